import Foundation
import SovnetLink
import Testing

/// `sovnet forward` against dnsmasq, Debian's DHCP server, over the `vm`
/// framing: dnsmasq serves on a tap in a "host" namespace that the test joins
/// to the socket (`TapBridge`); the guest is another namespace. The guest
/// runs with an empty environment and the default resolv.conf path, which
/// inside `ip netns exec` is a bind mount (the in-place write fallback).
@Suite(.enabled(if: canMakeNamespaces && FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq"),
                "needs root, iproute2 and dnsmasq to run guest and host in network namespaces"),
       .serialized)
final class ForwardDnsmasqTests {
    let work = uniqueTemporaryPath("dnsmasq")
    let host: TestNamespace
    let guest: TestNamespace
    let bridge: TapBridge
    let dnsmasq: Spawned
    let echo: Spawned

    init() throws {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        host = try TestNamespace("svt-dhost")
        guest = try TestNamespace("svt-dguest")
        let tapName = "svtb\(getpid() % 100_000)"
        bridge = try TapBridge(tapName: tapName, namespace: host, endpoint: .unix(path: work + "/vm.sock"), framing: .vm)
        try host.run("ip link set \(tapName) address 5a:94:ef:e4:0c:dd up && ip addr add 192.168.127.1/24 dev \(tapName)")
        dnsmasq = try Spawned(
            "ip netns exec \(host.name) dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces "
                + "--interface=\(tapName) --listen-address=192.168.127.1 --no-ping --pid-file=\(work)/dnsmasq.pid "
                + "--dhcp-range=192.168.127.20,192.168.127.50,255.255.255.0,1h --dhcp-leasefile=\(work)/leases "
                + "--dhcp-option=option:router,192.168.127.1 --dhcp-option=option:dns-server,192.168.127.1 "
                + "--dhcp-option=option:mtu,1400 --dhcp-option=option:domain-search,example.test,vm.example.test "
                + "--log-dhcp --log-facility=-",
            log: work + "/dnsmasq.log")
        echo = try Spawned("ip netns exec \(host.name) python3 -c \(quote(echoServer(port: 7777, host: "192.168.127.1")))",
                           log: work + "/echo.log")
        try bridge.start()
        let echo = self.echo
        #expect(waitUntil(10) { echo.output.contains("ready") }, "the echo server listens: \(echo.output)")
    }

    deinit {
        echo.stop()
        dnsmasq.stop()
        bridge.stop()
        guest.close()
        host.close()
        try? FileManager.default.removeItem(atPath: work)
    }

    func startForward(_ extra: String = "") throws -> Spawned {
        try Spawned("ip netns exec \(guest.name) env -i \(CommandLineTests.binary.path) forward "
                    + "-url unix://\(work)/vm.sock -stop-if-exist '' --hostname testguest \(extra)",
                    log: work + "/forward.log")
    }

    @Test func leaseAddressRouteMTUAndResolvConf() throws {
        let forward = try startForward("-debug")
        let bound = waitUntil(10) { forward.output.contains("lease obtained") }
        #expect(bound, "no lease: \(forward.output)\ndnsmasq: \(dnsmasq.output)")
        guard bound else { return }
        let address = try guest.run("ip -4 -o addr show dev tap0")
        #expect(address.contains("inet 192.168.127."))
        #expect(address.contains("/24"))
        #expect(try guest.run("ip route show default").contains("default via 192.168.127.1 dev tap0"))
        #expect(try guest.run("ip -o link show dev tap0").contains("mtu 1400"))
        let resolv = try String(contentsOfFile: "/etc/netns/\(guest.name)/resolv.conf", encoding: .utf8)
        #expect(resolv.contains("nameserver 192.168.127.1"))
        #expect(resolv.contains("search example.test vm.example.test"))
        #expect(dnsmasq.output.contains("testguest"), "the hostname option reached dnsmasq")
        // -debug: a line per frame in each direction, the DHCP client's own included.
        #expect(forward.output.contains("dhcp> IP 0.0.0.0.68 > 255.255.255.255.67: DHCP Discover"))
        #expect(forward.output.contains("guest> "))
        #expect(forward.output.contains("host> IP 192.168.127.1.67 >"))
        // Time from connect to a bound address, as the log reports it.
        let line = forward.output.split(separator: "\n").first { $0.contains("lease obtained") } ?? ""
        let milliseconds = line.split(separator: " ").reversed().dropFirst().first.flatMap { Double($0) }
        #expect(milliseconds != nil)
        print("connect to bound: \(milliseconds ?? -1) ms")
    }

    /// --static skips DHCP; the kernel behind the host tap answers pings.
    /// A frame that is not well-formed Ethernet (three VLAN tags) is dropped
    /// and counted, and traffic carries on.
    @Test func staticAddressAndMalformedFrames() throws {
        let forward = try startForward("-debug --static 192.168.127.77/24 --gateway 192.168.127.1 --dns 192.168.127.1")
        defer { forward.stop() }
        #expect(waitUntil(10) { forward.output.contains("connected to") }, "\(forward.output)")
        #expect(forward.output.contains("static address 192.168.127.77/24 gateway 192.168.127.1"))
        #expect(!forward.output.contains("DHCP Discover"))
        #expect(try guest.run("ip -4 -o addr show dev tap0").contains("inet 192.168.127.77/24"))
        #expect(try guest.run("ping -c 2 -i 0.2 -W 2 192.168.127.1").contains("2 received"))
        var malformed = [UInt8](repeating: 0xFF, count: 12)
        for _ in 0..<3 { malformed += [0x81, 0x00, 0x00, 0x01] }
        malformed += [0x08, 0x00] + [UInt8](repeating: 0, count: 40)
        #expect(try bridge.inject(malformed))
        #expect(waitUntil(5) { forward.output.contains("dropped malformed frame of 66 bytes from host") })
        #expect(try guest.run("ping -c 1 -W 2 192.168.127.1").contains("1 received"))
    }

    /// -preexisting attaches to a tap configured by someone else and changes nothing.
    @Test func preexistingTapIsLeftAsItIs() throws {
        try guest.run("ip tuntap add dev tap0 mode tap && ip link set tap0 address 02:00:00:00:00:42 mtu 1300 up "
                      + "&& ip addr add 192.168.127.99/24 dev tap0")
        let forward = try startForward("-preexisting")
        defer { forward.stop() }
        #expect(waitUntil(10) { forward.output.contains("connected to") }, "\(forward.output)")
        #expect(try guest.run("ping -c 2 -i 0.2 -W 2 192.168.127.1").contains("2 received"))
        let link = try guest.run("ip -o link show dev tap0")
        #expect(link.contains("02:00:00:00:00:42") && link.contains("mtu 1300"))
        #expect(!forward.output.contains("lease"))
        #expect(forward.stop() == 0)
        #expect(try guest.run("ip -4 -o addr show dev tap0").contains("192.168.127.99/24"), "the address is not ours to remove")
    }

    /// The host side dies and comes back: the tap keeps its address, the
    /// lease is confirmed again, and a TCP connection carries on.
    @Test func reconnectKeepsAddressAndTCPConnection() throws {
        let forward = try startForward()
        defer { forward.stop() }
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        let before = try guest.run("ip -4 -o addr show dev tap0")
        let client = try Spawned(
            "ip netns exec \(guest.name) python3 -c \(quote(echoClient(host: "192.168.127.1", port: 7777, rounds: 40, pause: 0.1)))",
            log: work + "/client.log")
        defer { client.stop() }
        usleep(1_000_000)
        bridge.stop()
        #expect(waitUntil(5) { forward.output.contains("connection to host lost") }, "\(forward.output)")
        usleep(1_000_000)
        #expect(try guest.run("ip -4 -o addr show dev tap0") == before, "address kept while the host is away")
        try bridge.start()
        #expect(waitUntil(10) { forward.output.components(separatedBy: "lease obtained").count == 3 }, "\(forward.output)")
        #expect(waitUntil(20) { !client.isRunning })
        #expect(client.output.contains("40 echoes"), "client: \(client.output)")
        #expect(try guest.run("ip -4 -o addr show dev tap0") == before)
        // Connected at least twice: a loaded machine may see an extra attempt while the bridge comes back.
        #expect(forward.output.components(separatedBy: "connected to").count >= 3, "\(forward.output)")
    }
}
