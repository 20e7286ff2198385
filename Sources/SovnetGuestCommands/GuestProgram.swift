// Runs a guest command the way both binaries do (`sovnet forward`,
// `sovnet-guest forward`, `gvforwarder`): parse the command line, print the
// help or a usage error, run, and exit with the command's status. A usage
// error, also one found while running (a bad -mac), is the message, the
// command's usage lines and exit status 64 (EX_USAGE). A failure while
// running (a socket that cannot be reached) is one line and exit status 1.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetLink

/// sovnet's version, the same in every program it builds.
public enum SovnetVersion {
    public static let string = "0.1.0"
}

/// A guest command (forward, init): its command line and what it does with it.
public struct RunnableCommand: Sendable {
    public let spec: CommandSpec
    /// Runs with the parsed options; returns the exit status.
    let body: @Sendable (ParsedOptions) throws(CommandFailure) -> Int32

    init(spec: CommandSpec, body: @escaping @Sendable (ParsedOptions) throws(CommandFailure) -> Int32) {
        self.spec = spec
        self.body = body
    }

    /// The guest's commands, in the order help lists them.
    public static let all: [RunnableCommand] = [ForwardCommand.command, InitCommand.command]

    /// The command called `name`, if there is one.
    public static func named(_ name: String) -> RunnableCommand? { all.first { $0.spec.name == name } }

    /// Runs with `arguments` (the words after the command's name) as part of
    /// `program` (`sovnet`, `sovnet-guest`), and exits.
    public func main(_ arguments: [String], program: String) -> Never {
        let request: CommandSpec.Request
        do {
            request = try spec.parse(arguments)
        } catch {
            exitWithUsage(error, program: program)
        }
        switch request {
        case .help:
            Output.write(1, spec.helpText(program: program))
            exit(0)
        case .run(let options):
            do {
                exit(try body(options))
            } catch {
                switch error {
                case .usage(let usage):
                    exitWithUsage(usage, program: program)
                case .failed(let reason):
                    Output.write(2, "Error: \(reason)\n")
                    exit(1)
                }
            }
        }
    }

    private func exitWithUsage(_ error: UsageError, program: String) -> Never {
        Output.write(2, "Error: \(error.message)\n" + spec.usageLines(program: program))
        exit(64)
    }
}

/// Why a guest command did not run to its end.
enum CommandFailure: Error {
    /// The command line asks for something that cannot be (a bad -mac).
    case usage(UsageError)
    /// Running failed (a socket that cannot be reached).
    case failed(String)
}

/// Text to standard output or error, unbuffered (the process may exit next).
public enum Output {
    public static func write(_ descriptor: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { systemWrite(descriptor, $0.baseAddress, $0.count) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }
}
