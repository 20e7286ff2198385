// The network namespaces `sovnet bench` measures in, made and removed by it,
// so that nothing it sends leaves this machine:
//
//   guest  the guest: lo, and the tap or interface the stack under test
//          makes
//   host   the stack's host side (sovnet proxy, gvproxy, pasta, slirp4netns)
//          and the servers on its 127.0.0.1; its only route leads to
//          world, over a veth pair (10.77.0.2 → 10.77.0.1)
//   world  the far end of that route, so that tools which forward some of
//          the guest's traffic to their real gateway (pasta, slirp4netns)
//          forward it into a namespace made here
//
// guest and host get their own empty resolv.conf (/etc/netns/NAME).
import CSovnetShim
import Dispatch
import Foundation
import Glibc

/// Three namespaces for one run, removed by `close`.
public final class BenchTopology {
    public let guest: String
    public let host: String
    public let world: String
    private var closed = false

    /// The host's end of the link to the world, its gateway's address.
    public static let hostAddress = "10.77.0.2"
    public static let worldAddress = "10.77.0.1"

    public init(prefix: String) throws {
        guest = prefix + "-guest"
        host = prefix + "-host"
        world = prefix + "-world"
        close()
        closed = false
        for name in [guest, host, world] {
            try Self.run(["ip", "netns", "add", name])
            try Self.run(["ip", "-n", name, "link", "set", "lo", "up"])
        }
        // Empty resolv.conf files: nothing run inside reads or rewrites the machine's.
        for name in [guest, host] {
            try FileManager.default.createDirectory(atPath: "/etc/netns/\(name)", withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: "/etc/netns/\(name)/resolv.conf", contents: Data())
        }
        try Self.run(["ip", "link", "add", "svb-w0", "netns", world, "type", "veth", "peer", "name", "svb-h0", "netns", host])
        try Self.run(["ip", "-n", world, "addr", "add", Self.worldAddress + "/24", "dev", "svb-w0"])
        try Self.run(["ip", "-n", world, "link", "set", "svb-w0", "up"])
        try Self.run(["ip", "-n", host, "addr", "add", Self.hostAddress + "/24", "dev", "svb-h0"])
        try Self.run(["ip", "-n", host, "link", "set", "svb-h0", "up"])
        try Self.run(["ip", "-n", host, "route", "add", "default", "via", Self.worldAddress])
        // Ping sockets for everyone: the proxy's ICMP NAT and the ICMP probe use them.
        for name in [guest, host] {
            try Self.run(["ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"])
        }
    }

    deinit { close() }

    /// Removes the namespaces (what runs inside them must have been stopped).
    public func close() {
        guard !closed else { return }
        closed = true
        for name in [guest, host, world] { try? Self.run(["ip", "netns", "del", name]) }
        for name in [guest, host] { try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)") }
    }

    /// `ip netns exec NAME …`.
    public func inNamespace(_ name: String, _ arguments: [String]) -> [String] {
        ["ip", "netns", "exec", name] + arguments
    }

    /// Runs a command to its end (10 s at most); throws with its output if it fails.
    @discardableResult
    public static func run(_ arguments: [String], seconds: Double = 10) throws -> String {
        let log = NSTemporaryDirectory() + "sovnet-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(log) }
        let child = try ChildProcess(arguments, log: log)
        guard let status = child.wait(seconds: seconds) else {
            child.stop(SIGKILL)
            throw LaunchError("`\(arguments.joined(separator: " "))` did not finish in \(Int(seconds)) s")
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0 else { throw LaunchError("`\(arguments.joined(separator: " "))` failed (\(status)): \(output)") }
        return output
    }
}

/// Runs work on a thread of its own inside a network namespace: sockets it
/// makes there belong to that namespace.
public enum NamespaceThread {
    /// Runs `body` on a new thread that has entered namespace `name`, and
    /// waits for it; what it throws is thrown here.
    public static func run<T: Sendable>(in name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let thread = Thread {
            box.result = Result {
                try enter(name)
                return try body()
            }
            box.done.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
        box.done.wait()
        return try box.result!.get()
    }

    /// Starts `body` on a thread inside namespace `name` and returns at once.
    public static func start(in name: String, _ body: @escaping @Sendable () -> Void) {
        Thread {
            guard (try? enter(name)) != nil else { return }
            body()
        }.start()
    }

    static func enter(_ name: String) throws {
        let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LaunchError("namespace \(name): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard sovnet_enter_network_namespace(fd) == 0 else {
            throw LaunchError("cannot enter namespace \(name): \(String(cString: strerror(errno)))")
        }
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
    let done = DispatchSemaphore(value: 0)
}
