// A process the launcher started and supervises (the hypervisor, the netns
// guest's `sovnet forward`, a guest service): spawned without a shell, its
// output appended to a log file, reaped with waitpid, ended by its PID only.
import CSovnetShim
import Foundation
import Glibc
import SovnetGuest

/// A child process with its output in a log file.
public final class ChildProcess {
    public let pid: pid_t
    public let arguments: [String]
    public let log: String
    private var status: Int32?

    /// Starts `arguments[0]` (looked up in PATH when it has no slash).
    public init(_ arguments: [String], log: String) throws {
        guard let name = arguments.first else { throw LaunchError("nothing to run") }
        guard let path = Executable.find(name) else { throw LaunchError("\(name): not found in PATH") }
        self.arguments = arguments
        self.log = log
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let child = sovnet_spawn(path, argv, log)
        guard child > 0 else { throw LaunchError("cannot start \(name): \(String(cString: strerror(errno)))") }
        pid = child
    }

    /// Whether it still runs (reaping it if it ended).
    public var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = Self.exitStatus(raw)
            return false
        }
        return true
    }

    /// The exit status once it ended: the code, or 128 + the signal.
    public var exitStatus: Int32? {
        _ = isRunning
        return status
    }

    /// Waits up to `seconds` for it to end; its exit status, or nil.
    public func wait(seconds: Double) -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while isRunning, ContinuousClock.now < deadline { usleep(20_000) }
        return status
    }

    /// Sends `signal`, waits up to `grace` seconds, then SIGKILL; the exit status.
    @discardableResult
    public func stop(_ signal: Int32 = SIGTERM, grace: Double = 5) -> Int32 {
        if isRunning {
            kill(pid, signal)
            if wait(seconds: grace) == nil {
                kill(pid, SIGKILL)
                _ = wait(seconds: 5)
            }
        }
        return status ?? -1
    }

    /// The last `lines` lines of its log.
    public func tail(_ lines: Int = 20) -> String {
        LogFile.tail(log, lines: lines)
    }

    static func exitStatus(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7F
        return signal == 0 ? (raw >> 8) & 0xFF : 128 + signal
    }
}

/// Reads the end of a log file.
public enum LogFile {
    public static func tail(_ path: String, lines: Int) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        let text = String(decoding: data.suffix(64 << 10), as: UTF8.self)
        return text.split(whereSeparator: \.isNewline).suffix(lines).joined(separator: "\n")
    }
}

/// Finds programs.
public enum Executable {
    /// The path of `name`: itself when it has a slash, else the first match in PATH.
    public static func find(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            var info = stat()
            if stat(candidate, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// This program's own path, to start `sovnet forward` with.
    public static var current: String { OwnProgram.path }

    /// The guest's program, built beside `program` (this one by default):
    /// `sovnet-guest-embedded` (scripts/build-guest-embedded, 2.5 MB and
    /// static), else `sovnet-guest`, else `program` (sovnet has the guest's
    /// commands too).
    public static func guestProgram(beside program: String = current) -> String {
        let directory = (program as NSString).deletingLastPathComponent
        for name in ["sovnet-guest-embedded", "sovnet-guest"] where access(directory + "/" + name, X_OK) == 0 {
            return directory + "/" + name
        }
        return program
    }
}

/// A launch failure with a message for the user.
public struct LaunchError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
