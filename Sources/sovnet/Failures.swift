// How the commands say what went wrong. A usage error (a flag or its value,
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
        for command in Sovnet.configuration.subcommands {
            if command == Self.self { return "sovnet \(_commandName)" }
            if command.configuration.subcommands.contains(where: { $0 == Self.self }) {
                return "sovnet \(command._commandName) \(_commandName)"
            }
        }
        return "sovnet \(_commandName)"
    }
}

/// Reads a text file whole; a failure names `what` and `path` ("cannot read -config /tmp: Is a directory").
func readTextFile(_ path: String, what: String) throws(RuntimeFailure) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw RuntimeFailure("cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { throw RuntimeFailure("cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
        if count == 0 { break }
        bytes += buffer[..<count]
        guard bytes.count <= 16 << 20 else { throw RuntimeFailure("cannot read \(what) \(path): larger than 16 MiB") }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw RuntimeFailure("cannot read \(what) \(path): not UTF-8 text")
    }
    return text
}

/// Writes a text file whole, replacing it; a failure names `what` and `path`.
func writeTextFile(_ path: String, _ text: String, what: String) throws(RuntimeFailure) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RuntimeFailure("cannot write \(what) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { throw RuntimeFailure("cannot write \(what) \(path): \(String(cString: strerror(errno)))") }
        written += count
    }
}

/// Checks, before a long run, that `path` can be written (creating it, not emptying it).
func checkWritable(_ path: String, what: String) throws(RuntimeFailure) {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RuntimeFailure("cannot write \(what) \(path): \(String(cString: strerror(errno)))") }
    close(fd)
}
