import Foundation
import Testing

/// IPv6 end to end with a real Linux guest: the guest kernel's own SLAAC
/// behind `sovnet forward`, the proxy in a namespace whose only IPv6 route
/// is the link to a "world" namespace the test made (2001:db8:55::1/64),
/// peers on the world and on the proxy side's ::1 (reached through the host
/// alias fd00::254), DNS at fd00::1, DHCPv6 with ISC dhclient, and a port
/// forward into the guest's IPv6 address.
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
            "--forward tcp:127.0.0.1:8122=[\(Self.guestAddress)]:8100 --dhcpv6-addresses"
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
        // /stats is a snapshot taken every 100 ms.
        let lab = self.lab
        #expect(waitUntil(2) {
            (((try? lab.stats())?["nat"] as? [String: Any])?["icmp"] as? [String: Int])?["packetsToGuest"] ?? 0 >= 4
        }, "\((try? lab.stats())?["nat"] ?? "")")
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

    @Test func theAPIsForwardsTakeIPv6EndsFromTheHostAndFromTheGuest() throws {
        try lab.server(guest, "echo-server :: 8100")
        _ = try guest.run("ping -6 -c 1 -W 2 fd00::1 || true")
        let api = "curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock"
        let body = #"{"local":"[::1]:8124","remote":"[\#(Self.guestAddress)]:8100","protocol":"tcp"}"#
        #expect(try host.run("\(api) -X POST -d '\(body)' -w '%{http_code}' http://sovnet/services/forwarder/expose") == "200")
        #expect(try lab.client(host, "echo ::1 8124 --size 100000") == "ok", "the host's ::1 into the guest's IPv6 address")
        // The guest's own view of the API, at the gateway's IPv6 address: the forwards into its address.
        let seen = try guest.run("curl -s --max-time 5 'http://[fd00::1]/services/forwarder/all'")
        #expect(seen.contains(#""local":"[::1]:8124""#) && seen.contains(#""remote":"[\#(Self.guestAddress)]:8100""#), "\(seen)")
        let own = #"{"local":"127.0.0.1:8125","remote":"[\#(Self.guestAddress)]:8100","protocol":"tcp"}"#
        #expect(try guest.run("curl -s --max-time 5 -X POST -d '\(own)' -w '%{http_code}' 'http://[fd00::1]/services/forwarder/expose'")
                == "200", "a guest may forward into its own IPv6 address")
        // The reachability checks of `sovnet up` and `sovnet check`, at the guest's IPv6 address.
        let ping = try host.run(#"\#(api) -X POST -d '{"address":"\#(Self.guestAddress)","count":2}' http://sovnet/sovnet/check/ping"#)
        #expect(ping.contains(#""received":2"#), "\(ping)")
        let check = try host.run(#"\#(api) -X POST -d '{"address":"\#(Self.guestAddress)","port":8100}' http://sovnet/sovnet/check/tcp"#)
        #expect(check.contains(#""open""#), "\(check)")
        let other = #"{"local":"127.0.0.1:8126","remote":"[fd00::99]:8100","protocol":"tcp"}"#
        #expect(try guest.run("curl -s --max-time 5 -X POST -d '\(other)' -w '%{http_code}' 'http://[fd00::1]/services/forwarder/expose'")
                .hasSuffix("403"), "but into no other")
    }

    @Test func dhclientGetsAnAddressAndDNSByDHCPv6() throws {
        let work = lab.work
        let files = "-lf \(work)/dhclient6.leases -pf \(work)/dhclient6.pid"
        // dhclient binds to the link-local address, which must have passed duplicate address detection.
        let guest = self.guest
        #expect(waitUntil(5) { ((try? guest.run("ip -6 addr show dev tap0 tentative")) ?? "x").isEmpty })
        let before = try guest.run("ip -6 addr show dev tap0")
        let stateful = try guest.run("dhclient -6 -1 -v \(files) tap0 2>&1 || true", seconds: 30)
        #expect(stateful.contains("Bound to lease"), "\(stateful)\n\(before)\n\((try? guest.run("ip -6 addr show dev tap0")) ?? "")")
        #expect(waitUntil(10) { ((try? guest.run("ip -6 addr show dev tap0 -tentative")) ?? "").contains("inet6 fd00::1:0/") },
                "\((try? guest.run("ip -6 addr show dev tap0")) ?? "")")
        #expect(try guest.run("ping -6 -c 1 -W 2 -I fd00::1:0 fd00::1 || true").contains(" 0% packet loss"))
        let resolv = try String(contentsOfFile: "/etc/netns/\(guest.name)/resolv.conf", encoding: .utf8)
        #expect(resolv.contains("nameserver fd00::1"), "\(resolv)")
        _ = try guest.run("dhclient -6 -r \(files) tap0 2>&1", seconds: 20)
        // Stateless: what the reply carried, as dhclient hands it to its script.
        try "#!/bin/sh\necho \"$reason $new_dhcp6_name_servers\" >> \(work)/s.out\n".write(toFile: "\(work)/s.sh", atomically: true,
                                                                                           encoding: .utf8)
        try shell("chmod +x \(work)/s.sh")
        _ = try guest.run("dhclient -6 -S -1 -v -sf \(work)/s.sh -lf \(work)/s.leases -pf \(work)/s.pid tap0 2>&1", seconds: 30)
        let stateless = try String(contentsOfFile: "\(work)/s.out", encoding: .utf8)
        #expect(stateless.hasSuffix(" fd00::1\n"), "the reply's DNS server: \(stateless)")
        _ = try? guest.run("kill $(cat \(work)/s.pid) 2>/dev/null")
        let stats = try lab.stats()
        #expect((stats["dhcpv6"] as? [String: Int])?["solicit"] ?? 0 >= 1, "\(stats["dhcpv6"] ?? "")")
        #expect(lab.proxy.output.contains("DHCPv6 lease fd00::1:0 on port"), "\(lab.proxy.output)")
    }
}
