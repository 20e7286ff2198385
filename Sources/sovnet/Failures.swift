// How the host's commands say what went wrong (the guest's, forward and
// init, say it the same way: SovnetGuestCommands' GuestProgram). A usage error (a flag or its value,
// ArgumentParser's `ValidationError`) prints the subcommand's own usage line
// and exits 64 (EX_USAGE), also when it is found while running. A failure
// while running (a file that cannot be read, a socket that cannot be bound)
// is one line, exit status 1, with the path the user gave and the system's
// words for the error.
import ArgumentParser
import Glibc

/// A failure while running, not of the command line: one line, exit status 1.
struct RuntimeFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The top command of the program running, set once at start by its `main`.
enum CommandRoot {
    nonisolated(unsafe) static var current: ParsableCommand.Type = Sovnet.self
}

extension ParsableCommand {
    /// Runs `body`; a usage error it finds is reported as this command's:
    /// the message, its usage line, and exit status 64.
    static func reportingUsage<Value>(_ body: () throws -> Value) throws -> Value {
        do {
            return try body()
        } catch let error as ValidationError {
            let name = commandPath
            let text = "Error: \(error.message)\nUsage: \(name) <options>\n  See '\(name) --help' for more information.\n"
            _ = Array(text.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            Glibc.exit(64)
        }
    }

    /// The words that run this command: `sovnet proxy`, `sovnet guest install`.
    static var commandPath: String {
        let root = CommandRoot.current
        for command in root.configuration.subcommands {
            if command == Self.self { return "\(root._commandName) \(_commandName)" }
            if command.configuration.subcommands.contains(where: { $0 == Self.self }) {
                return "\(root._commandName) \(command._commandName) \(_commandName)"
            }
        }
        return "\(root._commandName) \(_commandName)"
    }
}
