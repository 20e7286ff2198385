import Foundation
import Testing

/// Attacks from a hostile guest (Tests/Peers/hostile.py writing raw frames
/// into the proxy's `-listen` socket) beside a real Linux guest. Each must
/// leave the proxy serving while it runs: the guest's pings to the gateway
/// answered, the API answering, and a new guest leased and reaching the host
/// within 2 s. Then each checks that the attack did no harm, with the drops
/// it was counted under.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
struct HostileGuestTests {
    static let hostile = URL(fileURLWithPath: ProxyLab.peers).deletingLastPathComponent().appendingPathComponent("hostile.py").path

    /// Runs `hostile.py SOCKET ARGUMENTS` and, while it runs, checks that
    /// the proxy serves; returns the attacker's report.
    @discardableResult
    func attack(_ lab: ProxyLab, _ arguments: String, newGuest: Int, seconds: Double = 120) throws -> [String: Any] {
        let attacker = try Spawned("python3 \(Self.hostile) \(lab.work)/vm.sock \(arguments)",
                                   log: "\(lab.work)/attack-\(uniqueNumber()).log")
        lab.processes.append(attacker)
        usleep(300_000)
        try expectServing(lab, newGuest: newGuest, during: arguments)
        #expect(attacker.wait(seconds) != nil, "\(arguments) did not end: \(attacker.output)")
        let line = attacker.output.split(separator: "\n").last.map(String.init) ?? ""
        return (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }

    /// The proxy serves: a new guest started now leases within 2 s and pings
    /// the host; meanwhile the guest's pings to the gateway and the API are answered.
    func expectServing(_ lab: ProxyLab, newGuest: Int, during attack: String) throws {
        let newcomer = try TestNamespace("svt-new")
        defer { newcomer.close() }
        let started = ContinuousClock.now
        let forward = try Spawned("ip netns exec \(newcomer.name) env -i \(CommandLineTests.binary.path) forward "
                                  + "-url unix://\(lab.work)/vm.sock -mac 02:00:00:00:01:\(String(format: "%02x", newGuest)) "
                                  + "-stop-if-exist ''", log: "\(lab.work)/newcomer-\(newGuest).log")
        defer { forward.stop() }
        let ping = try lab.guest.run("ping -c 3 -i 0.2 -W 1 192.168.127.1 || true")
        #expect(ping.contains(" 0% packet loss"), "gateway ping during \(attack): \(ping)")
        let api = try lab.host.run("curl -s -o /dev/null -w '%{http_code}' --max-time 2 --unix-socket \(lab.work)/vm.sock http://sovnet/stats || true")
        #expect(api == "200", "API during \(attack): \(api)")
        let left = 2 - (ContinuousClock.now - started).milliseconds / 1000
        #expect(waitUntil(max(0, left)) { forward.output.contains("lease obtained") },
                "a new guest's lease within 2 s during \(attack): \(forward.output)")
        let reach = try newcomer.run("ping -c 1 -W 1 192.168.127.254 || true")
        #expect(reach.contains(" 0% packet loss"), "a new guest's ping to the host during \(attack): \(reach)")
    }

    func drops(_ lab: ProxyLab) throws -> [String: Int] {
        try lab.stats()["drops"] as? [String: Int] ?? [:]
    }

    func leases(_ lab: ProxyLab) throws -> [String: String] {
        let text = try lab.host.run("curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock http://sovnet/leases")
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String])
    }

    @Test func dnsFloodsAreBounded() throws {
        let lab = try ProxyLab("hdns")
        // Upstreams that never answer: UDP swallows, TCP accepts and holds.
        try lab.server(lab.host, "udp-sink-server 127.0.0.1 5353")
        try lab.server(lab.host, "sink-server 127.0.0.1 5353 --delay 120")
        let udp = try attack(lab, "dns-flood --count 70000", newGuest: 1)
        #expect((udp["servfail"] as? Int ?? 0) > 60_000, "queries past the bound get SERVFAIL at once: \(udp)")
        let dns = try #require(try lab.stats()["dns"] as? [String: Int])
        #expect((dns["servfail-limit"] ?? 0) > 60_000, "\(dns)")
        // Local names are still answered.
        #expect(try lab.guest.run("dig +short +time=2 +tries=1 @192.168.127.1 gateway.containers.internal")
                    .contains("192.168.127.1"))
        try attack(lab, "dns-tcp-flood --count 3000 --address 192.168.127.67 --hold 1", newGuest: 2)
        let upstream = try lab.host.run("ss -Htn state established '( dport = :5353 )' | wc -l")
        let connections = Int(upstream.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect((0...16).contains(connections), "upstream connections for one guest's pipelined queries: \(connections)")
        let after = try #require(try lab.stats()["dns"] as? [String: Int])
        // Most of the 3,000 are refused at once; a few more than 16 are asked as earlier ones time out.
        #expect((after["servfail-limit"] ?? 0) > (dns["servfail-limit"] ?? 0) + 1000, "\(after)")
    }

    @Test func dhcpStarvationAndSpoofingFail() throws {
        let lab = try ProxyLab("hdhcp")
        let before = try leases(lab)
        #expect(before == ["192.168.127.2": "5a:94:ef:e4:0c:ee"], "\(before)")
        try attack(lab, "dhcp-init-reboot --count 251", newGuest: 3)
        try attack(lab, "dhcp-discover --count 2000 --mac 02:66:66:66:66:02", newGuest: 4)
        // One port holds at most 16 bindings, whatever it asked for.
        let held = try leases(lab).filter { $0.key != "192.168.127.2" }
        #expect(held.count <= 16 + 2, "bindings after the floods: \(held.count)")
        // RELEASE and DECLINE in the guest's name from another port change nothing.
        try attack(lab, "dhcp-release --mac 02:66:66:66:66:03", newGuest: 5)
        #expect(try leases(lab)["192.168.127.2"] == "5a:94:ef:e4:0c:ee")
        #expect(try lab.guest.run("ping -c 1 -W 2 192.168.127.254").contains(" 0% packet loss"))
        // 70,000 DECLINEs of any address are ignored without slowing anything down.
        let report = try attack(lab, "dhcp-decline --count 70000 --mac 02:66:66:66:66:04", newGuest: 6)
        #expect(report["closed"] as? Bool == false)
        let dhcp = try #require(try lab.stats()["dhcp"] as? [String: Int])
        #expect(dhcp["declines"] == nil && (dhcp["ignored"] ?? 0) >= 70_000, "\(dhcp)")
    }

    @Test func addressesCannotBeTakenOrForged() throws {
        let lab = try ProxyLab("haddr")
        // ARP replies claiming the gateway and the guest, broadcast and unicast to the guest.
        try attack(lab, "arp-spoof --count 50", newGuest: 7)
        let neighbours = try lab.guest.run("ip neigh show 192.168.127.1")
        #expect(neighbours.contains("5a:94:ef:e4:0c:dd") || !neighbours.contains("02:66"), "the guest's ARP entry: \(neighbours)")
        #expect(!neighbours.contains("02:66:66:66:66:01"))
        var spoofed = try drops(lab)["spoofed-address"] ?? 0
        #expect(spoofed >= 150, "spoofed-address drops: \(spoofed)")
        // Packets to the guest forged from the gateway, 0.0.0.0 and the host alias never reach it.
        try lab.server(lab.guest, "udp-listen 0.0.0.0 7100 --timeout 6")
        try attack(lab, "spoof-to-guest --count 20 --port 7100", newGuest: 8)
        #expect(waitUntil(8) { lab.processes.contains { $0.output.contains("received 0") } },
                "\(lab.processes.map(\.output))")
        let forged = try drops(lab)["spoofed-address"] ?? 0
        #expect(forged >= spoofed + 60)
        spoofed = try drops(lab)["spoofed-address"] ?? 0
        // One port sending from every address of the pool holds 16 of them; new guests still lease and are served.
        try attack(lab, "squat --count 2 --mac 02:66:66:66:66:05", newGuest: 9)
        #expect((try drops(lab)["spoofed-address"] ?? 0) > spoofed + 400)
        // Nothing from 0.0.0.0 is NATed.
        try lab.server(lab.host, "echo-server 127.0.0.1 7101")
        let opened = try lab.nat()["tcpFlowsOpened"] as? Int ?? 0
        try attack(lab, "zero-source --count 100 --port 7101", newGuest: 10)
        #expect(try lab.nat()["tcpFlowsOpened"] as? Int ?? 0 <= opened + 10, "only the new guests' own flows")
    }

    @Test func ipv6AddressesCannotBeTakenOrRoutersFaked() throws {
        let lab = try ProxyLab("hv6")
        let victim = "fd00::5894:efff:fee4:cee"
        let guest = lab.guest
        #expect(waitUntil(15) { ((try? guest.run("ip -6 -br addr show dev tap0 scope global -tentative")) ?? "").contains(victim) })
        _ = try guest.run("ping -6 -c 1 -W 2 fd00::1 || true")
        // Advertisements claiming the gateway's and the guest's addresses, and a rogue router's.
        try attack(lab, "ndp-spoof --count 30 --target \(victim)", newGuest: 20)
        let neighbour = try guest.run("ip -6 neigh show fd00::1")
        #expect(!neighbour.contains("02:66:66:66:66:01"), "the guest's neighbour entry for the gateway: \(neighbour)")
        let routes = try guest.run("ip -6 route; ip -6 addr")
        #expect(!routes.contains("2001:db8:bad"), "no rogue prefix or route reached the guest: \(routes)")
        let dropped = try drops(lab)
        #expect(dropped["spoofed-address"] ?? 0 >= 60 && dropped["guest-router-message"] ?? 0 >= 30, "\(dropped)")
        // New sources by the hundred: the attacker's own (16 kept at a time), never the guest's.
        let spoofedBefore = dropped["spoofed-address"] ?? 0
        let report = try attack(lab, "ipv6-squat --count 500 --target \(victim)", newGuest: 21)
        #expect((report["echo6-reply"] as? Int ?? 0) >= 450, "\(report)")
        #expect((try drops(lab)["spoofed-address"] ?? 0) == spoofedBefore + 1, "the guest's address, claimed last, refused")
        #expect(try guest.run("ping -6 -c 2 -i 0.2 -W 2 fd00::1 || true").contains(" 0% packet loss"))
    }

    @Test func perGuestLimitsHold() throws {
        let lab = try ProxyLab("hlim", proxyArguments: { _ in "--max-flows-per-guest 50" })
        try lab.server(lab.host, "echo-server 127.0.0.1 7200")
        // 400 SYNs from four addresses of one port: one quota of 50, not four.
        try attack(lab, "syn-flood --count 400 --port 7200 --hold 1", newGuest: 11)
        let nat = try lab.nat()
        let drops = nat["drops"] as? [String: Int] ?? [:]
        #expect((drops["guest-flow-limit"] ?? 0) >= 340, "\(nat)")
        // 100,000 source MACs: the switch keeps 256 of them for the port.
        try attack(lab, "mac-flood --count 100000 --mac 02:66:66:66:66:06", newGuest: 12)
        let cam = try lab.host.run("curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock http://sovnet/cam")
        let table = try #require(try JSONSerialization.jsonObject(with: Data(cam.utf8)) as? [String: Int])
        #expect(table.count <= 256 + 4, "CAM entries: \(table.count)")
        #expect((try self.drops(lab)["mac-limit"] ?? 0) > 90_000)
        // The API's reads, 400 of them back to back, do not hold the network up.
        let reads = try Spawned("ip netns exec \(lab.host.name) sh -c 'for i in $(seq 200); do "
                                + "curl -s --max-time 2 --unix-socket \(lab.work)/vm.sock http://sovnet/stats >/dev/null; "
                                + "curl -s --max-time 2 --unix-socket \(lab.work)/vm.sock http://sovnet/cam >/dev/null; done'",
                                log: lab.work + "/reads.log")
        lab.processes.append(reads)
        try expectServing(lab, newGuest: 16, during: "API reads")
        #expect(reads.wait(60) == 0)
        // 2,000 connections that come and go leave no entries in /stats behind.
        try lab.host.run("python3 -c \"import socket\nfor _ in range(2000):\n s=socket.socket(socket.AF_UNIX);s.connect('\(lab.work)/vm.sock');s.close()\"", seconds: 60)
        #expect(waitUntil(5) { ((try? lab.stats())?["departedPortCount"] as? Int ?? 0) >= 2000 })
        let ports = try lab.stats()["ports"] as? [String: Any] ?? [:]
        #expect(ports.count <= 3, "ports in /stats: \(ports.keys.sorted())")
    }

    @Test func theGuestReachableAPIHasAPolicy() throws {
        let sockets = uniqueTemporaryPath("guest-sockets")
        try FileManager.default.createDirectory(atPath: sockets, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: sockets) }
        try FileManager.default.createSymbolicLink(atPath: sockets + "/out", withDestinationPath: "/tmp")
        let lab = try ProxyLab("hapi", proxyArguments: { _ in "--guest-forwards 3 --guest-socket-dir \(sockets)" })
        func expose(_ json: String, _ route: String = "expose") throws -> String {
            try lab.guest.run("curl -s --max-time 5 -X POST -d '\(json)' -w ' %{http_code}' http://192.168.127.1/services/forwarder/\(route)")
        }
        // Into another address, or over a host service's UDP port: refused.
        #expect(try expose(#"{"local":":7601","remote":"192.168.127.9:80"}"#).hasSuffix("403"))
        try lab.server(lab.host, "udp-echo-server 127.0.0.1 7602")
        #expect(try expose(#"{"local":":7602","remote":"192.168.127.2:53","protocol":"udp"}"#).hasSuffix("403"))
        // Unix sockets only under the directory, however the path is spelt.
        #expect(try expose(#"{"local":"/tmp/guest.sock","remote":"192.168.127.2:80","protocol":"unix"}"#).hasSuffix("403"))
        #expect(try expose(#"{"local":"\#(sockets)/../escape.sock","remote":"192.168.127.2:80","protocol":"unix"}"#).hasSuffix("403"))
        #expect(try expose(#"{"local":"\#(sockets)/out/escape.sock","remote":"192.168.127.2:80","protocol":"unix"}"#).hasSuffix("403"))
        #expect(try expose(#"{"local":"\#(sockets)/web.sock","remote":"192.168.127.2:80","protocol":"unix"}"#).hasSuffix("200"))
        // Three forwards at most, into its own address.
        #expect(try expose(#"{"local":":7603","remote":"192.168.127.2:80"}"#).hasSuffix("200"))
        #expect(try expose(#"{"local":":7604","remote":"192.168.127.2:80"}"#).hasSuffix("200"))
        #expect(try expose(#"{"local":":7605","remote":"192.168.127.2:80"}"#).hasSuffix("403"))
        // The host's forward (-ssh-port) is not the guest's to remove; its own are.
        #expect(try expose(#"{"local":"127.0.0.1:2222"}"#, "unexpose").hasSuffix("404"))
        #expect(try expose(#"{"local":":7603"}"#, "unexpose").hasSuffix("200"))
        let listed = try lab.guest.run("curl -s --max-time 5 http://192.168.127.1/services/forwarder/all")
        #expect(listed.contains("0.0.0.0:7604") && listed.contains("web.sock") && listed.contains("2222"), "\(listed)")
        let host = try lab.host.run("curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock http://sovnet/services/forwarder/all")
        #expect(host.contains("0.0.0.0:7604"))
        // Twenty idle connections from the guest: sixteen are kept, and only for ten seconds.
        let idle = try Spawned("ip netns exec \(lab.guest.name) python3 -c \(quote(Self.idleConnections))", log: lab.work + "/idle.log")
        lab.processes.append(idle)
        #expect(idle.wait(30) != nil)
        #expect(idle.output.contains("closed at once 4"), "\(idle.output)")
        #expect(idle.output.contains("closed within 12 s 16"), "\(idle.output)")
    }

    /// Twenty connections to the gateway's port 80 that send half a request.
    static let idleConnections = """
        import socket, time
        connections = [socket.create_connection(("192.168.127.1", 80), timeout=15) for _ in range(20)]
        for c in connections:
            c.sendall(b"GET /services/forwarder/all HTTP/1.1\\r\\nHost: x\\r\\n")
        def closed(c, wait):
            c.settimeout(wait)
            try:
                return c.recv(100) == b""
            except (socket.timeout, ConnectionResetError):
                return isinstance(c, ConnectionResetError)
        time.sleep(0.5)
        early = [c for c in connections if closed(c, 0.01)]
        print("closed at once", len(early))
        start = time.monotonic()
        late = [c for c in connections if c not in early and closed(c, max(0.01, 12 - (time.monotonic() - start)))]
        print("closed within 12 s", len(late))
        """

    @Test func theGuestAPICanBeTurnedOff() throws {
        let lab = try ProxyLab("hoff", proxyArguments: { _ in "--no-guest-api" })
        let answer = try lab.guest.run("curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://192.168.127.1/services/forwarder/all || true")
        #expect(answer == "000", "\(answer)")
        #expect(try lab.host.run("curl -s --max-time 5 -o /dev/null -w '%{http_code}' --unix-socket \(lab.work)/vm.sock http://sovnet/services/forwarder/all") == "200")
    }

    @Test func anAPIConnectionIsSentNoFramesBeforeItsRequest() throws {
        let lab = try ProxyLab("hhead")
        // The guest broadcasts while an API client connects to -listen and waits a second before its request.
        let broadcasts = try Spawned("ip netns exec \(lab.guest.name) ping -b -c 40 -i 0.05 192.168.127.255", log: lab.work + "/ping.log")
        lab.processes.append(broadcasts)
        let answer = try lab.host.run("python3 -c \(quote("""
            import socket, time
            s = socket.socket(socket.AF_UNIX)
            s.connect("\(lab.work)/vm.sock")
            time.sleep(1)
            s.sendall(b"GET /stats HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            print(s.recv(12))
            """))")
        #expect(answer.contains("b'HTTP/1.1 200'"), "\(answer)")
    }

    @Test func localRoutesAreTheHost() throws {
        let lab = try ProxyLab("hloc")
        // The host answers on every address of a local route; a server on 0.0.0.0 would be reached through it.
        try lab.host.run("ip route add local 10.99.0.0/24 dev lo")
        try lab.server(lab.host, "banner-server 0.0.0.0 7500 --text host")
        #expect(try lab.client(lab.host, "connect 10.99.0.5 7500") == "host 10.99.0.5", "the route makes them the host's")
        let reached = try lab.client(lab.guest, "connect 10.99.0.5 7500 --timeout 2")
        #expect(reached.hasPrefix("TimeoutError") || reached.hasPrefix("timeout"), "\(reached)")
        let drops = try lab.nat()["drops"] as? [String: Int] ?? [:]
        #expect((drops["host-address"] ?? 0) >= 1, "\(drops)")
    }

    @Test func flowsStayWithinTheDescriptorLimit() throws {
        // 1,200 descriptors: 688 for flows of all protocols, 512 kept for everything else.
        let lab = try ProxyLab("hfd", proxyArguments: { _ in "--max-flows-per-guest 5000" }, proxyPrefix: "prlimit --nofile=1200:1200")
        #expect(lab.proxy.output.contains("limited to 688 by the descriptor limit"), "\(lab.proxy.output)")
        try lab.server(lab.host, "echo-server 127.0.0.1 7700")
        let report = try Spawned("python3 \(Self.hostile) \(lab.work)/vm.sock syn-flood --count 1500 --port 7700 --hold 2",
                                 log: lab.work + "/flood.log")
        lab.processes.append(report)
        #expect(report.wait(60) != nil)
        let nat = try lab.nat()
        let open = (nat["tcpStates"] as? [String: Int] ?? [:]).values.reduce(0, +)
        #expect(open <= 688, "\(nat)")
        #expect((nat["flowLimitHits"] as? Int ?? 0) >= 700, "\(nat)")
        #expect(!lab.proxy.output.contains("Too many open files"), "\(lab.proxy.output.suffix(1000))")
        #expect(try lab.host.run("curl -s -o /dev/null -w '%{http_code}' --max-time 2 --unix-socket \(lab.work)/vm.sock http://sovnet/stats") == "200")
    }

    @Test func framesAPlainGuestCannotTakeAreDropped() throws {
        let lab = try ProxyLab("hfrm", forwardArguments: "--no-offload")
        let reconnects = lab.forward.output.components(separatedBy: "connected to").count
        // 200 plain frames of 9,000 bytes to the guest over an offloading link: dropped, the guest stays connected.
        try attack(lab, "oversize --count 200 --size 9000", newGuest: 13)
        let oversized = try drops(lab)
        #expect(oversized["oversized-frame"] == 200, "\(oversized)")
        #expect(lab.forward.output.components(separatedBy: "connected to").count == reconnects, "\(lab.forward.output)")
        // Superframes of 1-byte segments are refused whole, not cut 60,000-fold.
        let before = try lab.stats()["ports"] as? [String: [String: Int]] ?? [:]
        try attack(lab, "tiny-segments --count 100 --segment 1", newGuest: 14)
        let refused = try drops(lab)
        #expect(refused["bad-offload"] == 100, "\(refused)")
        let after = try lab.stats()["ports"] as? [String: [String: Int]] ?? [:]
        let sent = after.values.map { $0["framesOut"] ?? 0 }.reduce(0, +) - before.values.map { $0["framesOut"] ?? 0 }.reduce(0, +)
        #expect(sent < 2000, "frames sent to guests meanwhile: \(sent)")
    }

    /// A second guest on a persistent tap with a static address (its
    /// interface and connections outlive its forwarder), its forwarder
    /// connected, and a reader of a ticker-server on the host's `port`
    /// (`count` lines a tenth of a second apart). Returns the namespace, the
    /// forwarder's command (to start it again), the forwarder and the reader.
    func pushedToAPersistentGuest(_ lab: ProxyLab, _ name: String, port: Int, count: Int, timeout: Int) throws
        -> (TestNamespace, String, Spawned, Spawned) {
        let other = try TestNamespace(name)
        try other.run("ip tuntap add dev tap0 mode tap && ip link set tap0 address 02:00:00:00:02:01 "
                      + "&& ip addr add 192.168.127.3/24 dev tap0 && ip link set tap0 up && ip route add default via 192.168.127.1")
        let command = "ip netns exec \(other.name) env -i \(CommandLineTests.binary.path) forward -url unix://\(lab.work)/vm.sock "
            + "-iface tap0 -preexisting -mac 02:00:00:00:02:01 -stop-if-exist ''"
        let forward = try Spawned(command, log: lab.work + "/other-1.log")
        lab.processes.append(forward)
        #expect(waitUntil(5) { forward.output.contains("connected to") }, "\(forward.output)")
        try lab.server(lab.host, "ticker-server 127.0.0.1 \(port) --count \(count) --delay 0.1")
        let ticks = try Spawned("ip netns exec \(other.name) python3 \(ProxyLab.peers) ticks 192.168.127.254 \(port) "
                                + "--count \(count) --timeout \(timeout)", log: lab.work + "/ticks.log")
        lab.processes.append(ticks)
        return (other, command, forward, ticks)
    }

    @Test func aGuestsFlowsStayItsOwnAcrossAReconnect() throws {
        let lab = try ProxyLab("hrec")
        // A host service that only pushes: a line every 100 ms, 50 in all.
        let (other, command, first, ticks) = try pushedToAPersistentGuest(lab, "svt-hrec2", port: 7300, count: 50, timeout: 15)
        defer { other.close() }
        let address = "192.168.127.3"
        usleep(1_000_000)
        first.stop(SIGKILL)
        // Meanwhile another port claims the address with its own MAC and acknowledges the flow: it gets nothing.
        let flows = try other.run("ss -Htn dst 192.168.127.254:7300")
        let guestPort = try #require(flows.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first?
            .split(separator: ":").last.flatMap { Int($0) }, "\(flows)")
        let hijack = try attack(lab, "hijack --count 5 --address \(address) --guest-port \(guestPort) --port 7300", newGuest: 15)
        #expect(hijack["tcp-data"] == nil, "\(hijack)")
        let back = try Spawned(command, log: lab.work + "/other-2.log")
        lab.processes.append(back)
        // The guest came back: the pushes resume on its new port, all of them in order.
        #expect(ticks.wait(20) != nil)
        #expect(ticks.output.contains("50 ticks"), "\(ticks.output)\n\(lab.proxy.output.suffix(1500))")
    }

    @Test func aGuestAwayPastTheGraceIsToldItsFlowsEnded() throws {
        let lab = try ProxyLab("hgone")
        let (other, command, forward, ticks) = try pushedToAPersistentGuest(lab, "svt-hgone2", port: 7310, count: 400, timeout: 30)
        defer { other.close() }
        usleep(1_000_000)
        forward.stop(SIGKILL)
        // Longer away than the proxy keeps a departed guest's flows (10 s): when it comes back it gets an RST, at once.
        usleep(11_500_000)
        let back = try Spawned(command, log: lab.work + "/other-2.log")
        lab.processes.append(back)
        #expect(ticks.wait(5) != nil, "the reading side was left waiting")
        #expect(ticks.output.contains("ConnectionResetError"), "\(ticks.output)\n\(lab.proxy.output.suffix(1500))")
    }
}
