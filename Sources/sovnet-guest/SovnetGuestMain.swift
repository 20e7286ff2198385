// `sovnet-guest`: the guest's half of sovnet alone, for small guests (a
// phone's VM): `sovnet forward` and `sovnet init`, the same commands as in
// `sovnet`, without the host's (proxy, up, bench), so it links neither
// Foundation nor SwiftNIO. Run as `sovnet-init` (or as PID 1 with no
// command line) it is the guest's init; run as `gvforwarder` it is
// `forward` with gvforwarder's command line.
import ArgumentParser
import Glibc
import SovnetGuest
import SovnetGuestCommands

@main
struct SovnetGuestProgram: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sovnet-guest",
        abstract: "The guest side of sovnet: forward (replaces gvforwarder) and init (PID 1).",
        version: SovnetVersion.string,
        subcommands: [ForwardCommand.self, InitCommand.self]
    )

    static func main() {
        CommandRoot.current = SovnetGuestProgram.self
        let arguments = CommandLine.arguments
        let invokedAs = arguments.first?.split(separator: "/").last.map(String.init)
        if invokedAs == GuestLayout.initName || arguments.isEmpty && getpid() == 1 {
            main(["init"] + arguments.dropFirst())
        } else if invokedAs == "gvforwarder" {
            main(["forward"] + arguments.dropFirst())
        } else {
            main(nil)
        }
    }
}
