import Foundation
import Testing

/// The NAT under load from a real Linux guest: many connections at once and
/// in a row, every byte checked, and a UDP flood beside TCP and the API.
/// Counts and waits are bounded; speed is measured by `sovnet bench` and
/// scripts/soak, not here.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
final class LoadTests {
    /// A generous descriptor limit for the peers; the proxy starts with the
    /// common soft limit of 1,024 and must raise it itself.
    static let peerLimit = "prlimit --nofile=4096:"

    /// 1,000 connections open at once, each echoing 20,000 bytes of its own,
    /// compared byte for byte; then 10,000 short connections in a row. The
    /// proxy was started with a soft limit of 1,024 descriptors (it raises
    /// it), nothing fails, and its descriptors come back to where they were.
    @Test func aThousandAtOnceThenTenThousandInARow() throws {
        var hard = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &hard)
        try #require(hard.rlim_max >= 4096, "a hard descriptor limit of \(hard.rlim_max) is too low for 1,000 flows")
        let lab = try ProxyLab("load", proxyPrefix: "prlimit --nofile=1024:")
        let limits = try String(contentsOfFile: "/proc/\(lab.proxy.pid)/limits", encoding: .utf8)
        let soft = limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first
        #expect(soft.map(String.init) == "\(hard.rlim_max)", "the soft limit raised to the hard one:\n\(limits)")
        try lab.server(lab.host, "echo-server 127.0.0.1 7100", prefix: Self.peerLimit)
        let before = try lab.proxyDescriptors()
        let many = try lab.client(lab.guest, "many 192.168.127.254 7100 --count 1000 --size 20000 --timeout 60",
                                  prefix: Self.peerLimit, seconds: 120)
        #expect(many == "1000 of 1000 ok", "\(lab.proxy.output.suffix(1000))")
        let short = try lab.client(lab.guest, "short 192.168.127.254 7100 --count 10000 --timeout 100", seconds: 120)
        #expect(short.hasPrefix("10000 of 10000 ok"), "\(short)\n\(lab.proxy.output.suffix(1000))")
        print("load: \(many) at once; short connections: \(short)")
        // The NAT's statistics are published every 100 ms.
        #expect(waitUntil(2) { ((try? lab.nat())?["tcpFlowsOpened"] as? Int ?? 0) >= 11_000 }, "\((try? lab.nat()) ?? [:])")
        let nat = try lab.nat()
        let drops = nat["drops"] as? [String: Int] ?? [:]
        #expect(drops["flow-limit"] == nil && drops["host-socket"] == nil, "\(drops)")
        // TIME-WAIT holds no host socket: the descriptors return once the flows end.
        let returned = waitUntil(20) { (try? lab.proxyDescriptors()) ?? .max <= before }
        #expect(returned, "descriptors \((try? lab.proxyDescriptors()) ?? -1), were \(before)")
        print("load: proxy descriptors \(before) before, \((try? lab.proxyDescriptors()) ?? -1) after")
    }

    /// One guest holding every flow it may (`--max-flows-per-guest 20`) is
    /// refused more, counted; another guest on the same proxy still gets its own.
    @Test func oneGuestCannotTakeEveryFlow() throws {
        let lab = try ProxyLab("quota", proxyArguments: { _ in "--max-flows-per-guest 20" })
        try lab.server(lab.host, "echo-server 127.0.0.1 7210")
        let other = try TestNamespace("svt-quota2")
        defer { other.close() }
        let forward = try Spawned("ip netns exec \(other.name) env -i \(CommandLineTests.binary.path) forward "
                                  + "-url unix://\(lab.work)/vm.sock -mac 5a:94:ef:e4:0c:ef -stop-if-exist ''",
                                  log: lab.work + "/forward2.log")
        lab.processes.append(forward)
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        // The first guest asks for 30 and holds what it got for 5 s; meanwhile the other asks for 20.
        let hold = try Spawned("ip netns exec \(lab.guest.name) python3 \(ProxyLab.peers) hold 192.168.127.254 7210 "
                               + "--count 30 --delay 5 --timeout 5", log: lab.work + "/hold.log")
        lab.processes.append(hold)
        usleep(2_000_000)
        #expect(try lab.client(other, "hold 192.168.127.254 7210 --count 20") == "opened 20 refused 0")
        #expect(hold.wait(30) == 0)
        #expect(hold.output.contains("opened 20 refused 10"), "\(hold.output)")
        let drops = try lab.nat()["drops"] as? [String: Int] ?? [:]
        #expect(drops["guest-flow-limit"] == 10, "\(drops)")
    }

    /// The guest floods UDP at the host's loopback for 5 s while a TCP echo
    /// goes on and the control API is asked for its stats: every echo comes
    /// back and every API call is answered.
    @Test func aUDPFloodStarvesNeitherTCPNorTheAPI() throws {
        let lab = try ProxyLab("flood")
        try lab.server(lab.host, "udp-sink-server 127.0.0.1 7200")
        try lab.server(lab.host, "echo-server 127.0.0.1 7201")
        let flood = try Spawned("ip netns exec \(lab.guest.name) python3 \(ProxyLab.peers) flood 192.168.127.254 7200 "
                                + "--size 1400 --delay 5", log: lab.work + "/flood.log")
        lab.processes.append(flood)
        let echoes = try Spawned("ip netns exec \(lab.guest.name) python3 \(ProxyLab.peers) steady 192.168.127.254 7201 "
                                 + "--count 40 --delay 0.1", log: lab.work + "/steady.log")
        lab.processes.append(echoes)
        var answered = 0
        var slowest = 0.0
        for _ in 0..<8 {
            let started = Date()
            if (try? lab.stats()) != nil { answered += 1 }
            slowest = max(slowest, Date().timeIntervalSince(started))
            usleep(400_000)
        }
        #expect(echoes.wait(30) == 0)
        #expect(echoes.output.contains("40 echoes"), "\(echoes.output)")
        #expect(answered == 8, "the API answered \(answered) of 8 calls; the slowest took \(slowest) s")
        #expect(flood.wait(20) == 0)
        let sent = Int(flood.output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "") ?? 0
        #expect(sent > 10_000, "the flood was a flood: \(flood.output)")
        print("load: UDP flood of \(sent) datagrams; 40 echoes and \(answered) API calls answered, slowest \(slowest) s")
        let nat = try lab.nat()
        let udp = try #require(nat["udp"] as? [String: Int], "\(nat)")
        #expect((udp["packetsFromGuest"] ?? 0) > 1_000, "\(nat)")
    }
}
