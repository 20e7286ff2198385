// The `sovnet` command: parses options and hands them to the drivers.
import ArgumentParser
import Glibc
import Logging
import SovnetDrivers
import SovnetGuest
import SovnetGuestCommands

@main
struct Sovnet: AsyncParsableCommand {
    static let version = SovnetVersion.string

    static let configuration = CommandConfiguration(
        commandName: "sovnet",
        abstract: "User-mode networking for virtual machines, wire-compatible with gvisor-tap-vsock.",
        discussion: """
            forward runs in the guest (replaces gvforwarder); proxy runs on the host \
            (replaces gvproxy); up boots a guest and checks that it is reachable; guest install \
            and init put sovnet into a guest and start it first.
            """,
        version: version,
        subcommands: [
            ForwardEntry.self, ProxyCommand.self, UpCommand.self, DownCommand.self, StatusCommand.self,
            CheckCommand.self, DoctorCommand.self, PcapCommand.self, BenchCommand.self, GuestCommand.self,
            InitEntry.self,
        ]
    )

    /// Run as `sovnet-init` (the link `sovnet guest install` makes), the
    /// binary is the guest's init; run as `gvproxy` or `gvforwarder` (a link
    /// put where podman or a guest image looks for those), it is `sovnet
    /// proxy` or `sovnet forward` with gvproxy's command line; otherwise the
    /// command line chooses.
    /// Swift reads the command line from /proc/self/cmdline, which the
    /// kernel's first process does not have yet: PID 1 without one is the init.
    static func main() async {
        CommandRoot.current = Sovnet.self
        let arguments = CommandLine.arguments
        let invokedAs = arguments.first?.split(separator: "/").last.map(String.init)
        if invokedAs == GuestLayout.initName || arguments.isEmpty && getpid() == 1 {
            await main(["init"] + arguments.dropFirst())
        } else if let subcommand = invokedAs.flatMap({ Self.standIns[$0] }) {
            if subcommand == "proxy", arguments.contains("--drop-capabilities") { dropCapabilities() }
            await main([subcommand] + arguments.dropFirst())
        } else if arguments.dropFirst().first == "help", let name = arguments.dropFirst(2).first,
                  let guestCommand = RunnableCommand.named(name) {
            guestCommand.main(["--help"], program: "sovnet")
        } else if arguments.dropFirst().first == "help", let name = arguments.dropFirst(2).first, !name.hasPrefix("-"),
                  !configuration.subcommands.contains(where: { $0._commandName == name }) {
            let names = configuration.subcommands.map { $0._commandName }.joined(separator: ", ")
            let message = Array("Error: no subcommand '\(name)'; there are \(names)\nUsage: sovnet help <subcommand>\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            Glibc.exit(64)
        } else if arguments.isEmpty {
            let message = Array("sovnet: cannot read the command line: /proc is not mounted\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            Glibc.exit(2)
        } else {
            if arguments.dropFirst().first == "proxy", arguments.contains("--drop-capabilities") { dropCapabilities() }
            await main(nil)
        }
    }

    /// The programs sovnet stands in for, by the name it is run as.
    static let standIns = ["gvproxy": "proxy", "gvforwarder": "forward"]

    /// `sovnet proxy --drop-capabilities`. Linux keeps capabilities per
    /// thread, and the subcommand runs on a thread of Swift's pool, after
    /// others have started: only here, on the main thread before the first
    /// `await`, does every thread to come inherit the drop.
    static func dropCapabilities() {
        do {
            try Capabilities.keepOnly([Capabilities.netBindService])
        } catch {
            let message = Array("sovnet proxy: \(error)\n".utf8)
            _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            Glibc.exit(1)
        }
    }
}
