import CSovnetShim
import Foundation
import Glibc
import Synchronization

/// Whether the end-to-end tests can make network namespaces here.
let canMakeNamespaces = geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip")
    || geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/sbin/ip")

/// A number no other call in this process gets.
private let uniqueNumbers = Mutex(0)
func uniqueNumber() -> Int {
    uniqueNumbers.withLock { value in
        value += 1
        return value
    }
}

/// A temporary path of one test instance's own. Suites run their tests one
/// after another, but an instance's deinit may run after the next instance
/// started: a path shared between instances would be removed under it.
func uniqueTemporaryPath(_ prefix: String) -> String {
    NSTemporaryDirectory() + "sovnet-\(prefix)-\(getpid())-\(uniqueNumber())"
}

/// A network namespace made by a test, with its own empty resolv.conf so
/// that nothing run inside can rewrite the machine's. Deleted on `close`.
/// Its name is its own too, for the same reason as `uniqueTemporaryPath`.
final class TestNamespace {
    let name: String
    private(set) var closed = false

    init(_ base: String) throws {
        name = "\(base)-\(getpid() % 100_000)-\(uniqueNumber())"
        _ = try? shell("ip netns del \(name)")
        try FileManager.default.createDirectory(atPath: "/etc/netns/\(name)", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: "/etc/netns/\(name)/resolv.conf", contents: Data())
        try shell("ip netns add \(name)")
        try shell("ip -n \(name) link set lo up")
    }

    /// Runs a shell command inside the namespace (bounded to `seconds`) and returns its output.
    @discardableResult
    func run(_ command: String, seconds: Int = 30) throws -> String {
        try shell("ip netns exec \(name) sh -c \(quote(command))", seconds: seconds)
    }

    /// Ends whatever still runs inside (helpers that daemons such as dhcpcd
    /// leave behind), then deletes the namespace.
    func close() {
        guard !closed else { return }
        closed = true
        _ = try? shell("ip netns pids \(name) | xargs -r kill -9")
        _ = try? shell("ip netns del \(name)")
        try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
    }

    deinit { close() }
}

/// A process a test started with posix_spawn, its output going to a log
/// file; stopped by its PID when the test is done.
///
/// Foundation's `Process` is not used for these: it learns that a child has
/// exited from a socket the child inherits, and daemons such as dnsmasq and
/// passt close every inherited descriptor at start, which leaves Foundation
/// blocked in waitpid for a child that is still running.
final class Spawned {
    let pid: pid_t
    let log: String
    private var status: Int32?

    /// Starts `command` with /bin/sh.
    init(_ command: String, log: String) throws {
        self.log = log
        unlink(log)
        let arguments = ["/bin/sh", "-c", "exec " + command]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let child = sovnet_spawn("/bin/sh", argv, log)
        guard child > 0 else { throw ShellError(command: command, status: errno, output: "spawn failed") }
        pid = child
    }

    /// Whether the process is still running (reaping it if it has ended).
    var isRunning: Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
            status = Self.exitStatus(raw)
            return false
        }
        return true
    }

    /// Sends `signal`, waits up to five seconds, then kills; returns the exit status.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM) -> Int32 {
        if isRunning {
            kill(pid, signal)
            _ = waitUntil(5) { !isRunning }
            if isRunning {
                kill(pid, SIGKILL)
                var raw: Int32 = 0
                waitpid(pid, &raw, 0)
                status = Self.exitStatus(raw)
            }
        }
        return status ?? -1
    }

    /// Waits up to `seconds` for the process to end; its exit status, or nil.
    func wait(_ seconds: Double) -> Int32? {
        _ = waitUntil(seconds) { !isRunning }
        return status
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    private static func exitStatus(_ raw: Int32) -> Int32 {
        raw & 0x7F == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
    }

    deinit { stop(SIGKILL) }
}

struct ShellError: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let output: String
    var description: String { "`\(command)` exited \(status): \(output)" }
}

/// Runs a shell command (bounded to `seconds`) and returns its output; throws on failure.
@discardableResult
func shell(_ command: String, seconds: Int = 30) throws -> String {
    let log = NSTemporaryDirectory() + "sovnet-shell-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
    defer { unlink(log) }
    let child = try Spawned("timeout \(seconds) sh -c \(quote(command))", log: log)
    let status = child.wait(Double(seconds + 10)) ?? child.stop(SIGKILL)
    guard status == 0 else { throw ShellError(command: command, status: status, output: child.output) }
    return child.output
}

/// Single-quotes `text` for /bin/sh.
func quote(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// Polls `condition` every 50 ms for up to `seconds`.
func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
