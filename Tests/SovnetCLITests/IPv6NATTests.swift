import Foundation
import Testing

/// IPv6 end to end with a real Linux guest: the guest kernel's own SLAAC
/// behind `sovnet forward`, the proxy in a namespace whose only IPv6 route
/// is the link to a "world" namespace the test made (2001:db8:55::1/64),
/// peers on the world and on the proxy side's ::1 (reached through the host
/// alias fd00::254), DNS at fd00::1, and a port forward into the guest's
/// IPv6 address.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
final class IPv6NATTests {
    static var peers: String { ProxyLab.peers }
    /// The guest's SLAAC address: the /64 and the EUI-64 of sovnet forward's default MAC, 5a:94:ef:e4:0c:ee.
    static let guestAddress = "fd00::5894:efff:fee4:cee"
    let lab: ProxyLab
    var world: TestNamespace { lab.world! }
    var host: TestNamespace { lab.host }
    var guest: TestNamespace { lab.guest }

    init() throws {
        lab = try ProxyLab("v6", world: true, proxyArguments: { _ in
            "--forward tcp:127.0.0.1:8122=[\(Self.guestAddress)]:8100"
        })
        try world.run("ip -6 addr add 2001:db8:55::1/64 dev w0 nodad")
        try host.run("ip -6 addr add 2001:db8:55::2/64 dev svt-p0 nodad && ip -6 route add default via 2001:db8:55::1")
        let guest = self.guest
        #expect(waitUntil(15) {
            let routes = (try? guest.run("ip -6 route show default")) ?? ""
            let addresses = (try? guest.run("ip -6 -br addr show dev tap0 scope global -tentative")) ?? ""
            return routes.contains("via fe80::") && addresses.contains(Self.guestAddress)
        }, "\((try? guest.run("ip -6 addr; ip -6 route")) ?? "")\n\(lab.proxy.output)")
    }

    @Test func theGuestPingsTheWorldAndTheHostsLoopback() throws {
        #expect(try guest.run("ping -6 -c 2 -i 0.2 -W 2 2001:db8:55::1 || true").contains(" 0% packet loss"))
        #expect(try guest.run("ping -6 -c 2 -i 0.2 -W 2 fd00::254 || true").contains(" 0% packet loss"),
                "fd00::254 is the host's ::1, pinged on a ping socket")
        let nat = try #require(try lab.stats()["nat"] as? [String: Any])
        #expect((nat["icmp"] as? [String: Int])?["packetsToGuest"] ?? 0 >= 4, "\(nat)")
    }

    @Test func tcpAndUDPToTheWorldAndTheHostsLoopback() throws {
        try lab.server(world, "echo-server 2001:db8:55::1 7300")
        try lab.server(host, "echo-server ::1 7301")
        #expect(try lab.client(guest, "echo 2001:db8:55::1 7300 --size 4000000") == "ok")
        #expect(try lab.client(guest, "echo fd00::254 7301 --size 4000000") == "ok", "the host alias to ::1")
        try lab.server(world, "udp-echo-server 2001:db8:55::1 7302")
        #expect(try lab.client(guest, "udp 2001:db8:55::1 7302 --count 3 --size 3000 --timeout 2") == "ok ok ok",
                "datagrams longer than the MTU come back in IPv6 fragments")
    }

    @Test func iperf3OverIPv6ToTheHostsLoopback() throws {
        let iperf = try Spawned("ip netns exec \(host.name) iperf3 -s -B ::1 -p 5202", log: lab.work + "/iperf3.log")
        lab.processes.append(iperf)
        #expect(waitUntil(5) { (try? self.host.run("ss -ltn | grep -q '\\[::1\\]:5202'")) != nil })
        for direction in ["", "-R"] {
            let report = try guest.run("iperf3 -6 -c fd00::254 -p 5202 -t 2 \(direction) 2>&1", seconds: 20)
            #expect(report.contains("receiver") && !report.contains("error"), "iperf3 -6 \(direction): \(report)")
        }
    }

    @Test func theHostsOwnAddressesAreRefusedAndCounted() throws {
        try lab.server(host, "echo-server 2001:db8:55::2 7303")
        let answer = (try? lab.client(guest, "echo 2001:db8:55::2 7303 --size 10 --timeout 1")) ?? "failed"
        #expect(!answer.hasPrefix("ok"), "\(answer)")
        let nat = try #require(try lab.stats()["nat"] as? [String: Any])
        #expect((nat["drops"] as? [String: Int])?["host-address"] ?? 0 >= 1, "\(nat)")
    }

    @Test func dnsAtTheGatewaysIPv6AddressAnswersAAAA() throws {
        let answer = try guest.run("dig +short +time=3 @fd00::1 gateway.containers.internal A")
        #expect(answer.contains("192.168.127.1"), "\(answer)")
        let host = try guest.run("dig +short +time=3 @fd00::1 host.containers.internal AAAA")
        #expect(host.trimmingCharacters(in: .whitespacesAndNewlines) == "fd00::254", "\(host)")
        let overTCP = try guest.run("dig +tcp +short +time=3 @fd00::1 gateway.docker.internal AAAA")
        #expect(overTCP.trimmingCharacters(in: .whitespacesAndNewlines) == "fd00::1", "DNS over TCP at fd00::1: \(overTCP)")
    }

    @Test func aPortForwardReachesTheGuestsIPv6Address() throws {
        try lab.server(guest, "echo-server :: 8100")
        // The guest has used its address (the SLAAC above sent from it), so the gateway knows where it is.
        _ = try guest.run("ping -6 -c 1 -W 2 fd00::1 || true")
        #expect(try lab.client(host, "echo 127.0.0.1 8122 --size 1000000") == "ok")
    }
}
