// `sovnet-guest`: the guest's half of sovnet alone, for small guests (a
// phone's VM): `forward` and `init`, the same commands as in `sovnet`,
// without the host's (proxy, up, bench), so it links neither Foundation nor
// SwiftNIO nor swift-argument-parser. Run as `sovnet-init` (or as PID 1 with
// no command line) it is the guest's init; run as `gvforwarder` it is
// `forward` with gvforwarder's command line. `sovnet guest install` puts it
// in a guest as /usr/bin/sovnet, and its usage lines then say `sovnet`.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetGuest
import SovnetGuestCommands
import SovnetLink

@main
enum SovnetGuestProgram {
    /// Swift reads the command line from /proc/self/cmdline, which the
    /// kernel's first process does not have yet: PID 1 without one is the init.
    static func main() {
        let arguments = CommandLine.arguments
        let invokedAs = arguments.first?.split(separator: "/").last.map(String.init)
        if invokedAs == GuestLayout.initName || arguments.isEmpty && getpid() == 1 {
            InitCommand.command.main(Array(arguments.dropFirst()), program: "sovnet")
        }
        if invokedAs == "gvforwarder" {
            ForwardCommand.command.main(Array(arguments.dropFirst()), program: "sovnet")
        }
        guard let program = invokedAs else {
            Output.write(2, "sovnet: cannot read the command line: /proc is not mounted\n")
            exit(2)
        }
        let words = Array(arguments.dropFirst())
        switch words.first {
        case "-h", "--help", "-help":
            Output.write(1, help(program))
            exit(0)
        case "--version", "-version":
            Output.write(1, SovnetVersion.string + "\n")
            exit(0)
        case "help":
            guard let name = words.dropFirst().first else {
                Output.write(1, help(program))
                exit(0)
            }
            command(name, program).main(["--help"], program: program)
        case let name?:
            command(name, program).main(Array(words.dropFirst()), program: program)
        case nil:
            Output.write(2, "Error: a command is needed\n" + usage(program))
            exit(64)
        }
    }

    /// The command `name`, or a usage error that lists them.
    static func command(_ name: String, _ program: String) -> RunnableCommand {
        if let command = RunnableCommand.named(name) { return command }
        let names = RunnableCommand.all.map { $0.spec.name }.joined(separator: ", ")
        Output.write(2, "Error: no command '\(name)'; there are \(names)\n" + usage(program))
        exit(64)
    }

    static func usage(_ program: String) -> String {
        "Usage: \(program) <command> [<options>]\n  See '\(program) --help' for more information.\n"
    }

    static func help(_ program: String) -> String {
        var text = "OVERVIEW: The guest side of sovnet: forward (replaces gvforwarder) and init (PID 1).\n\n"
            + "USAGE: \(program) <command> [<options>]\n\nOPTIONS:\n"
            + "  --version               Show the version.\n  -h, --help              Show help information.\n\n"
            + "SUBCOMMANDS:\n"
        for command in RunnableCommand.all { text += HelpLayout.entry(command.spec.name, command.spec.abstract) }
        return text + "\n  See '\(program) help <command>' for detailed help.\n"
    }
}
