import Foundation
import Testing

/// A proxy and a Linux guest in namespaces of their own, for the end-to-end
/// tests of the NAT, its load and its faults: `sovnet proxy` in a "host"
/// namespace (with a "world" namespace behind a veth, 10.55.0.1/24, when
/// asked for; otherwise the host has no route but its loopback), listening on
/// `WORK/vm.sock`, and `sovnet forward` in a "guest" namespace with its lease.
/// Peers (Tests/Peers/peers.py) run on either side; nothing leaves the
/// namespaces the lab made.
final class ProxyLab {
    static let peers = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Peers/peers.py").path
    let work: String
    let world: TestNamespace?
    let host: TestNamespace
    let guest: TestNamespace
    /// How the proxy was started, to start it again (`restartProxy`).
    let proxyCommand: String
    private(set) var proxy: Spawned
    let forward: Spawned
    var processes: [Spawned] = []

    /// - Parameters:
    ///   - proxyArguments: added to `proxy -listen unix://WORK/vm.sock`, given WORK.
    ///   - proxyPrefix: put before the command (`prlimit …`).
    ///   - forwardArguments: added to `forward -url unix://WORK/vm.sock`.
    ///   - dnsUpstream: the proxy's `--dns-upstream`; nil to follow the host's resolv.conf.
    init(_ name: String, world withWorld: Bool = false, proxyArguments: (_ work: String) -> String = { _ in "" },
         proxyPrefix: String = "", forwardArguments: String = "", dnsUpstream: String? = "127.0.0.1:5353") throws {
        work = uniqueTemporaryPath(name)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        world = withWorld ? try TestNamespace("svt-world") : nil
        host = try TestNamespace("svt-\(name)h")
        guest = try TestNamespace("svt-\(name)g")
        if let world {
            let outside = "svt-w0-\(getpid() % 10000)"
            try shell("ip link add \(outside) netns \(world.name) type veth peer name svt-p0 netns \(host.name)")
            try world.run("ip link set \(outside) name w0 && ip addr add 10.55.0.1/24 dev w0 && ip link set w0 up")
            try host.run("ip addr add 10.55.0.2/24 dev svt-p0 && ip link set svt-p0 up")
        }
        try host.run("sysctl -q -w net.ipv4.ping_group_range='0 2147483647'")
        let work = self.work
        proxyCommand = "\(proxyPrefix) ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy "
            + "-listen unix://\(work)/vm.sock \(dnsUpstream.map { "--dns-upstream \($0) " } ?? "")\(proxyArguments(work))"
        let proxy = try Spawned(proxyCommand, log: work + "/proxy.log")
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/vm.sock") }, "\(proxy.output)")
        let forward = try Spawned("ip netns exec \(guest.name) env -i \(CommandLineTests.binary.path) forward "
                                  + "-url unix://\(work)/vm.sock -stop-if-exist '' \(forwardArguments)", log: work + "/forward.log")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)\n\(proxy.output)")
        self.proxy = proxy
        self.forward = forward
    }

    deinit {
        processes.forEach { $0.stop() }
        forward.stop()
        proxy.stop()
        guest.close()
        host.close()
        world?.close()
        try? FileManager.default.removeItem(atPath: work)
    }

    /// Kills the proxy with `signal` and starts it again as it was started,
    /// on the socket path the dead one left behind; returns once it listens.
    func restartProxy(killingWith signal: Int32 = SIGKILL) throws {
        proxy.stop(signal)
        let log = "\(work)/proxy-\(uniqueNumber()).log"
        proxy = try Spawned(proxyCommand, log: log)
        let proxy = self.proxy
        #expect(waitUntil(5) { proxy.output.contains("listening on unix://\(self.work)/vm.sock") }, "\(proxy.output)")
    }

    /// Starts a peer server in `namespace` and waits until it listens.
    func server(_ namespace: TestNamespace, _ arguments: String, prefix: String = "") throws {
        let log = "\(work)/server-\(processes.count).log"
        let peer = try Spawned("\(prefix) ip netns exec \(namespace.name) python3 -u \(Self.peers) \(arguments)", log: log)
        processes.append(peer)
        #expect(waitUntil(5) { peer.output.contains("ready") }, "\(arguments): \(peer.output)")
    }

    /// Runs a peer client in `namespace` and returns its one line.
    func client(_ namespace: TestNamespace, _ arguments: String, prefix: String = "", seconds: Int = 40) throws -> String {
        try namespace.run("\(prefix) python3 \(Self.peers) \(arguments)", seconds: seconds)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The proxy's `/stats`.
    func stats() throws -> [String: Any] {
        let text = try host.run("curl -s --max-time 5 --unix-socket \(work)/vm.sock http://sovnet/stats")
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// The NAT's part of `/stats`.
    func nat() throws -> [String: Any] {
        try #require(try stats()["nat"] as? [String: Any])
    }

    /// The proxy's resident memory in kB.
    func proxyMemory() throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(proxy.pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
    }

    /// The proxy's open descriptors.
    func proxyDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(proxy.pid)/fd").count
    }
}
