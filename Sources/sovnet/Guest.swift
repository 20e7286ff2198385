import ArgumentParser
import Logging
import SovnetCore
import SovnetDrivers
import SovnetGuest
import SovnetGuestCommands
import SovnetGuestCore
import SovnetLink

/// `sovnet guest`: putting sovnet into a guest.
struct GuestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest",
        abstract: "Put sovnet into a guest's root file system.",
        subcommands: [GuestInstallCommand.self]
    )
}

/// `sovnet guest install --rootfs DIR`.
struct GuestInstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Copy sovnet's guest program (and what it links) into a root file system and make it start first.",
        discussion: """
            The program is sovnet-guest-embedded (scripts/build-guest-embedded), else sovnet-guest \
            (forward and init alone), when it was built beside this sovnet, else this sovnet; it is installed as /usr/bin/sovnet, stripped. --init sovnet (the default) links /sbin/sovnet-init and writes /etc/sovnet/forward, \
            /etc/sovnet/services and /etc/sovnet/modules where they are missing; openrc and systemd \
            write and enable a service for sovnet forward instead. Prints the kernel parameters to boot with.
            """
    )

    @Option(name: .customLong("rootfs"), help: "The guest's root file system, a directory.", completion: .directory)
    var rootfs: String

    @Option(name: .customLong("init"), help: "What starts sovnet forward: sovnet, openrc or systemd.")
    var initKind = "sovnet"

    @Option(name: .customLong("url"), help: "Where sovnet forward reaches the host (written to /etc/sovnet/forward).")
    var url: String?

    @Option(name: .customLong("forward-args"), parsing: .unconditional,
            help: "All of sovnet forward's arguments, as one command line (instead of --url).")
    var forwardArguments: String?

    @Flag(name: .customLong("no-libraries"), help: "Do not copy the dynamic loader and shared libraries.")
    var noLibraries = false

    @Option(name: .customLong("binary"),
            help: ArgumentHelp("The program to install (default: sovnet-guest-embedded or sovnet-guest beside this sovnet, "
                               + "else this sovnet), e.g. one built for the guest's processor."),
            completion: .file())
    var binary: String?

    @Flag(name: .customLong("no-strip"), help: "Install the program with its symbols and debug information.")
    var noStrip = false

    func validate() throws {
        guard GuestInstall.InitKind(rawValue: initKind) != nil else { throw ValidationError("--init must be sovnet, openrc or systemd") }
        if url != nil, forwardArguments != nil { throw ValidationError("give --url or --forward-args, not both") }
        if let url {
            do {
                _ = try Endpoint(url: url)
            } catch {
                throw ValidationError("--url: \(error)")
            }
        }
    }

    func run() throws {
        try Self.reportingUsage(install)
    }

    private func install() throws {
        var options = GuestInstall.Options(root: rootfs)
        options.initKind = GuestInstall.InitKind(rawValue: initKind) ?? .sovnet
        options.copyLibraries = !noLibraries
        options.strip = !noStrip
        if let binary { options.binary = binary }
        if let url { options.forwardArguments = ["-url", url] }
        if let forwardArguments {
            do {
                options.forwardArguments = try ServiceList.split(forwardArguments)
            } catch {
                throw ValidationError("--forward-args: \(error)")
            }
        }
        let report: GuestInstall.Report
        do {
            report = try GuestInstall.run(options)
        } catch let problem as GuestInstall.Problem {
            throw RuntimeFailure(problem.description)
        }
        for path in report.written { print("wrote \(rootfs)\(path)") }
        if !report.libraries.isEmpty { print("copied the loader and \(report.libraries.count - 1) libraries") }
        for path in report.kept { print("kept the root file system's \(path)") }
        for note in report.notes { print("note: \(note)") }
        print("kernel parameters: \(report.kernelParameters)")
    }
}
