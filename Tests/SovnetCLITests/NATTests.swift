import Foundation
import Testing

/// The proxy's NAT with a real Linux guest: `sovnet forward` in a guest
/// namespace, the proxy in a namespace whose only route is the link to a
/// "world" namespace the test made (10.55.0.1/24), and peers (Tests/Peers/peers.py) on
/// the world, on the proxy side's loopback (reached through 192.168.127.254)
/// and in the guest (reached through port forwards).
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
final class NATTests {
    static var peers: String { ProxyLab.peers }
    static let maximumFlows = 250
    let lab: ProxyLab
    var work: String { lab.work }
    var world: TestNamespace { lab.world! }
    var host: TestNamespace { lab.host }
    var guest: TestNamespace { lab.guest }
    var proxy: Spawned { lab.proxy }
    var forward: Spawned { lab.forward }

    init() throws {
        lab = try ProxyLab("nat", world: true, proxyArguments: { work in
            "--forward tcp:127.0.0.1:8022=192.168.127.2:8000 --forward udp:127.0.0.1:8053=192.168.127.2:5300 "
                + "-pcap \(work)/nat.pcap --max-flows \(Self.maximumFlows) --flow-idle-timeout 3"
        })
    }

    @Test func tcpBothWaysToTheHostAliasAndTheWorld() throws {
        try lab.server(host, "echo-server 127.0.0.1 7000")
        try lab.server(world, "echo-server 10.55.0.1 7001")
        #expect(try lab.client(guest, "echo 192.168.127.254 7000 --size 4000000") == "ok", "NAT of .254 to the host's loopback")
        #expect(try lab.client(guest, "echo 10.55.0.1 7001 --size 4000000") == "ok", "a world address, as the guest asked")
        try lab.server(world, "sink-server 10.55.0.1 7002")
        try lab.server(world, "source-server 10.55.0.1 7003 --size 20000000")
        #expect(try lab.client(guest, "send 10.55.0.1 7002 --size 20000000") == "ok")
        #expect(try lab.client(guest, "fetch 10.55.0.1 7003 --size 20000000") == "ok")
        // Flows end, or wait in TIME-WAIT where the host closed first.
        func ended(_ states: [String: Int]?) -> Bool { states?.keys.allSatisfy { $0 == "time-wait" } == true }
        _ = waitUntil(3) { ended((try? lab.stats()).flatMap { ($0["nat"] as? [String: Any])?["tcpStates"] as? [String: Int] }) }
        let nat = try #require(try lab.stats()["nat"] as? [String: Any])
        let tcp = try #require(nat["tcp"] as? [String: Int])
        #expect(tcp["bytesFromGuest"]! >= 28_000_000 && tcp["bytesToGuest"]! >= 28_000_000, "\(nat)")
        #expect(nat["tcpFlowsOpened"] as? Int == 4)
        #expect(ended(nat["tcpStates"] as? [String: Int]), "every flow ended: \(nat)")
    }

    @Test func iperf3BothWaysThroughTheHostAlias() throws {
        let iperf = try Spawned("ip netns exec \(host.name) iperf3 -s -B 127.0.0.1 -p 5201", log: work + "/iperf3.log")
        lab.processes.append(iperf)
        #expect(waitUntil(5) { (try? host.run("ss -ltn | grep -q 127.0.0.1:5201")) != nil })
        for direction in ["", "-R"] {
            let report = try guest.run("iperf3 -c 192.168.127.254 -p 5201 -t 2 \(direction) 2>&1", seconds: 20)
            #expect(report.contains("receiver") && !report.contains("error"), "iperf3 \(direction): \(report)")
        }
    }

    @Test func curlOfALargeFileFromTheHostsLoopback() throws {
        try FileManager.default.createDirectory(atPath: work + "/www", withIntermediateDirectories: true)
        try shell("head -c 30000000 /dev/urandom > \(work)/www/big.bin")
        let web = try Spawned("ip netns exec \(host.name) python3 -m http.server 8080 --bind 127.0.0.1 --directory \(work)/www",
                              log: work + "/web.log")
        lab.processes.append(web)
        #expect(waitUntil(5) { (try? host.run("ss -ltn | grep -q 127.0.0.1:8080")) != nil })
        try guest.run("curl -sS --max-time 30 -o \(work)/got.bin http://192.168.127.254:8080/big.bin")
        let sums = try shell("sha256sum \(work)/www/big.bin \(work)/got.bin | cut -d' ' -f1 | uniq | wc -l")
        #expect(sums.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "the file arrives whole")
    }

    @Test func twoHundredConcurrentConnections() throws {
        try lab.server(host, "echo-server 127.0.0.1 7040")
        #expect(try lab.client(guest, "many 192.168.127.254 7040 --count 200 --size 20000") == "200 of 200 ok")
        let nat = try #require(try lab.stats()["nat"] as? [String: Any])
        #expect((nat["tcpFlowsOpened"] as? Int ?? 0) >= 200)
    }

    @Test func aGuestThatDisappearsLeavesNothingBehind() throws {
        try lab.server(world, "source-server 10.55.0.1 7050 --size 200000000")
        let before = try lab.proxyDescriptors()
        // The guest reads nothing, so the transfer is mid-way when the forwarder is killed.
        let reader = try Spawned("ip netns exec \(guest.name) python3 \(Self.peers) fetch 10.55.0.1 7050 --size 200000000 --delay 60",
                                 log: work + "/reader.log")
        lab.processes.append(reader)
        #expect(waitUntil(5) { (try? lab.proxyDescriptors()) == before + 1 }, "a host socket for the flow")
        forward.stop(SIGKILL)
        let cleaned = waitUntil(20) {
            (try? lab.proxyDescriptors()) == before - 1
                && ((try? lab.stats())?["nat"] as? [String: Any])?["tcpStates"] as? [String: Int] == [:]
        }
        // One descriptor fewer than before: the guest's connection went too.
        #expect(cleaned, "descriptors \((try? lab.proxyDescriptors()) ?? -1), was \(before); \(proxy.output.suffix(500))")
    }

    @Test func aForwarderThatReconnectsKeepsItsConnections() throws {
        // A second guest on a persistent tap, so the interface outlives its forwarder.
        let other = try TestNamespace("svt-nguest2")
        defer { other.close() }
        try other.run("ip tuntap add dev tap0 mode tap && ip link set tap0 address 5a:94:ef:e4:0c:ef "
                      + "&& ip addr add 192.168.127.3/24 dev tap0 && ip link set tap0 up "
                      + "&& ip route add default via 192.168.127.1")
        let command = "ip netns exec \(other.name) \(CommandLineTests.binary.path) forward -url unix://\(work)/vm.sock "
            + "-iface tap0 -preexisting -stop-if-exist ''"
        var forward = try Spawned(command, log: work + "/forward2.log")
        lab.processes.append(forward)
        try lab.server(host, "echo-server 127.0.0.1 7060")
        let echoes = try Spawned("ip netns exec \(other.name) python3 \(Self.peers) steady 192.168.127.254 7060 --count 40 --delay 0.1",
                                 log: work + "/steady.log")
        lab.processes.append(echoes)
        usleep(1_000_000)
        forward.stop(SIGKILL)
        usleep(1_000_000)
        forward = try Spawned(command, log: work + "/forward3.log")
        lab.processes.append(forward)
        #expect(echoes.wait(30) != nil)
        #expect(echoes.output.contains("40 echoes"), "\(echoes.output)\n\(proxy.output.suffix(800))")
    }

    @Test func jumboMTUBetweenSovnetPeers() throws {
        // A second proxy and guest at MTU 65520: segments of 65,480 bytes, frames near the 16-bit framing's limit.
        let jumbo = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy -listen unix://\(work)/jumbo.sock "
                                + "-mtu 65520 -ssh-port -1 --dns-upstream 127.0.0.1:5353", log: work + "/jumbo.log")
        lab.processes.append(jumbo)
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/jumbo.sock") }, "\(jumbo.output)")
        let other = try TestNamespace("svt-njumbo")
        defer { other.close() }
        let forward = try Spawned("ip netns exec \(other.name) env -i \(CommandLineTests.binary.path) forward "
                                  + "-url unix://\(work)/jumbo.sock -mtu 65520 -stop-if-exist ''", log: work + "/jumbo-forward.log")
        lab.processes.append(forward)
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        #expect(try other.run("ip -o link show tap0").contains("mtu 65520"), "the MTU from DHCP option 26")
        try lab.server(host, "echo-server 127.0.0.1 7070")
        try lab.server(host, "udp-echo-server 127.0.0.1 7071")
        let done = try lab.client(other, "echo 192.168.127.254 7070 --size 20000000")
        #expect(done == "ok", "\(jumbo.output.suffix(500))")
        #expect(try lab.client(other, "udp 192.168.127.254 7071 --size 65000 --count 2") == "ok ok")
    }

    @Test func slowPeersOnEitherSideLoseNothing() throws {
        // The host peer reads nothing for 2 s: the guest is held back by the window, nothing is lost,
        // and the proxy's memory stays within its bounds (a window and a backlog, a few MiB).
        let memory = try lab.proxyMemory()
        try lab.server(world, "sink-server 10.55.0.1 7010 --delay 2")
        #expect(try lab.client(guest, "send 10.55.0.1 7010 --size 30000000") == "ok")
        let growth = try lab.proxyMemory() - memory
        #expect(growth < 24_000, "resident memory grew by \(growth) kB")
        // The guest reads nothing for 2 s while the host sends.
        try lab.server(world, "source-server 10.55.0.1 7011 --size 30000000")
        #expect(try lab.client(guest, "fetch 10.55.0.1 7011 --size 30000000 --delay 2") == "ok")
    }

    @Test func refusedAndUnreachableDestinations() throws {
        let started = Date()
        #expect(try lab.client(guest, "connect 10.55.0.1 7999 --timeout 5") == "ConnectionRefusedError 111")
        #expect(try lab.client(guest, "connect 192.168.127.254 7999 --timeout 5") == "ConnectionRefusedError 111")
        #expect(Date().timeIntervalSince(started) < 4, "an RST comes promptly, not after a timeout")
        // 10.66.0.1 has no route from the proxy's namespace: the guest hears it
        // by ICMP network unreachable, which Linux reports as ENETUNREACH.
        #expect(try lab.client(guest, "connect 10.66.0.1 80 --timeout 5") == "OSError 101")
        // The proxy's own address on the world link leads to its services as
        // loopback would: dropped and counted, though a server listens on it.
        try lab.server(host, "echo-server 0.0.0.0 7998")
        #expect(try lab.client(guest, "connect 10.55.0.2 7998 --timeout 1") == "TimeoutError None")
        // Link-local is refused unless allowed: dropped and counted.
        #expect(try lab.client(guest, "connect 169.254.169.254 80 --timeout 1") == "TimeoutError None")
        let drops = try #require(try lab.stats()["nat"] as? [String: Any])["drops"] as? [String: Int]
        #expect((drops?["link-local-destination"] ?? 0) >= 1, "\(String(describing: drops))")
        #expect((drops?["host-address"] ?? 0) >= 1, "\(String(describing: drops))")
    }

    @Test func udpWithLargeDatagramsAndPortUnreachable() throws {
        try lab.server(world, "udp-echo-server 10.55.0.1 7020")
        try lab.server(host, "udp-echo-server 127.0.0.1 7021")
        #expect(try lab.client(guest, "udp 10.55.0.1 7020 --size 100 --count 3") == "ok ok ok")
        #expect(try lab.client(guest, "udp 192.168.127.254 7021 --size 60000 --count 2") == "ok ok",
                "datagrams of 60,000 bytes go out reassembled and come back in fragments")
        #expect(try lab.client(guest, "udp 10.55.0.1 7029 --size 10 --timeout 3") == "ConnectionRefusedError",
                "the host's ICMP port unreachable reaches the guest")
        let nat = try #require(try lab.stats()["nat"] as? [String: Any])
        #expect((nat["udpFlows"] as? Int ?? 0) >= 2)
        // --flow-idle-timeout 3: the flows end once idle, their sockets with them.
        #expect(waitUntil(8) { ((try? lab.stats())?["nat"] as? [String: Any])?["udpFlows"] as? Int == 0 })
    }

    /// The guest's ACK of the SYN-ACK and its first data are lost for 8 s
    /// (nftables in the guest drops every segment of the connection but the
    /// SYN), as when a flood overflows the guest's own tap queue: Linux
    /// counts the connection open and retransmits, the proxy waits in
    /// SYN-RECEIVED past the 6.2 s it once reset at, and the echoes come back.
    @Test func aHandshakeWhoseGuestACKsAreLostForSecondsCompletes() throws {
        try lab.server(host, "echo-server 127.0.0.1 7080")
        try drop(in: guest, table: "lossy", hook: "output", "ip daddr 192.168.127.254 tcp dport 7080 'tcp flags & syn == 0'")
        let echoes = try Spawned("ip netns exec \(guest.name) python3 \(Self.peers) steady 192.168.127.254 7080 --count 3 --delay 0.1",
                                 log: work + "/lossy.log")
        lab.processes.append(echoes)
        usleep(7_000_000)
        let states = ((try? lab.stats())?["nat"] as? [String: Any])?["tcpStates"] as? [String: Int]
        #expect(states == ["syn-received": 1], "the guest's ACKs are still lost: \(String(describing: states))")
        usleep(1_000_000)
        try guest.run("nft delete table inet lossy")
        #expect(echoes.wait(30) == 0)
        #expect(echoes.output.contains("3 echoes"), "\(echoes.output)")
    }

    /// Host connects that have not ended when connect returns: the world
    /// drops the first SYNs, so the proxy's kernel sends them again a second
    /// later. The guest gets its SYN-ACK once its connect succeeds, and an RST
    /// once the other's is refused. (Across a quick link connects end before
    /// connect returns, and the other tests take that path.)
    @Test func hostConnectsStillUnderWayEndLater() throws {
        try lab.server(world, "echo-server 10.55.0.1 7090")
        try drop(in: world, table: "slow", hook: "input", "tcp dport '{ 7090, 7091 }' 'tcp flags & (syn | ack) == syn'")
        let echo = try Spawned("ip netns exec \(guest.name) python3 \(Self.peers) echo 10.55.0.1 7090 --size 1000",
                               log: work + "/slow-echo.log")
        let refused = try Spawned("ip netns exec \(guest.name) python3 \(Self.peers) connect 10.55.0.1 7091 --timeout 10",
                                  log: work + "/slow-refused.log")
        lab.processes += [echo, refused]
        #expect(waitUntil(3) { ((try? lab.nat())?["tcpStates"] as? [String: Int]) == ["connecting": 2] },
                "both connects under way: \(String(describing: try? lab.nat()))")
        try world.run("nft delete table inet slow")
        #expect(echo.wait(20) == 0 && echo.output.contains("ok"), "\(echo.output)")
        #expect(refused.wait(20) == 0 && refused.output.contains("ConnectionRefusedError 111"), "\(refused.output)")
        #expect(try lab.client(guest, "echo 10.55.0.1 7090 --size 1000") == "ok")
    }

    /// Adds to `namespace` an nftables table whose one chain, on `hook`,
    /// drops the packets `match` matches; `nft delete table inet TABLE` ends it.
    private func drop(in namespace: TestNamespace, table: String, hook: String, _ match: String) throws {
        try namespace.run("nft add table inet \(table) && nft add chain inet \(table) \(hook) "
                          + "'{ type filter hook \(hook) priority 0 ; }' && nft add rule inet \(table) \(hook) \(match) drop")
    }

    @Test func theFlowLimitRefusesNewConnectionsAndRecovers() throws {
        try lab.server(host, "echo-server 127.0.0.1 7030")
        let held = try lab.client(guest, "hold 192.168.127.254 7030 --count \(Self.maximumFlows + 10) --timeout 5")
        #expect(held == "opened \(Self.maximumFlows) refused 10", "past --max-flows a SYN gets an RST")
        let nat = try #require(try lab.stats()["nat"] as? [String: Any])
        #expect(nat["flowLimitHits"] as? Int == 10, "\(nat)")
        // The guest closed first, so its flows end without TIME-WAIT and new ones fit again.
        _ = waitUntil(3) { ((try? lab.stats())?["nat"] as? [String: Any])?["tcpStates"] as? [String: Int] == [:] }
        #expect(try lab.client(guest, "echo 192.168.127.254 7030 --size 100000") == "ok")
    }

    @Test func pingThroughPingSocketsNeverFaked() throws {
        let answered = try guest.run("ping -c 3 -i 0.2 -W 2 10.55.0.1 | tail -2")
        #expect(answered.contains("3 received"), "\(answered)")
        let local = try guest.run("ping -c 2 -i 0.2 -W 2 192.168.127.254 | tail -2")
        #expect(local.contains("2 received"), "\(local)")
        let silent = try guest.run("ping -c 2 -i 0.2 -W 1 10.55.0.99 | tail -2 || true")
        #expect(silent.contains("0 received"), "no reply is made up for an address that did not answer: \(silent)")
        // Without ping sockets the proxy says so once and drops, never answering for the host.
        try host.run("sysctl -q -w net.ipv4.ping_group_range='1 0'")
        let refused = try guest.run("ping -c 2 -i 0.2 -W 1 10.55.0.1 | tail -2 || true")
        #expect(refused.contains("0 received"), "\(refused)")
        let drops = try #require(try lab.stats()["nat"] as? [String: Any])["drops"] as? [String: Int]
        #expect(drops?["ping-not-permitted"] == 2, "\(String(describing: drops))")
        #expect(proxy.output.components(separatedBy: "ping_group_range").count == 2, "said once: \(proxy.output)")
    }

    @Test func portForwardsIntoTheGuest() throws {
        try lab.server(guest, "banner-server 192.168.127.2 8000 --text web")
        let web = try lab.client(host, "connect 127.0.0.1 8022")
        #expect(web == "web 192.168.127.1", "--forward reaches the guest, which sees the gateway's address: \(web)\n\(proxy.output)")
        try lab.server(guest, "banner-server 192.168.127.2 22 --text SSH-2.0-test")
        #expect(try lab.client(host, "connect 127.0.0.1 2222") == "SSH-2.0-test 192.168.127.1", "-ssh-port's default forward")
        try lab.server(guest, "udp-echo-server 192.168.127.2 5300")
        #expect(try lab.client(host, "udp 127.0.0.1 8053 --size 3000 --count 2") == "ok ok")

        let api = "curl -s --max-time 5 --unix-socket \(work)/vm.sock"
        try lab.server(guest, "echo-server 192.168.127.2 9000")
        #expect(try host.run("\(api) -X POST -d '{\"local\":\":9090\",\"remote\":\"192.168.127.2:9000\"}' -w '%{http_code}' http://sovnet/services/forwarder/expose") == "200")
        #expect(try lab.client(host, "echo 127.0.0.1 9090 --size 3000000") == "ok")
        let all = try host.run("\(api) http://sovnet/services/forwarder/all")
        #expect(all.contains(#"{"local":"0.0.0.0:9090","protocol":"tcp","remote":"192.168.127.2:9000"}"#), "\(all)")
        #expect(all.contains(#""local":"127.0.0.1:2222""#))
        #expect(try host.run("\(api) -X POST -d '{\"local\":\":9090\",\"remote\":\"192.168.127.2:9000\"}' -w ' %{http_code}' http://sovnet/services/forwarder/expose").hasSuffix("409"), "a second expose of the same port is refused")
        #expect(try host.run("\(api) -X POST -d '{\"local\":\":9090\",\"protocol\":\"sctp\"}' -w ' %{http_code}' http://sovnet/services/forwarder/unexpose").hasSuffix("400"))
        // Inside the virtual network the gateway's port 80 serves the forwarder endpoints only, as gvproxy's does.
        let inside = try guest.run("curl -s --max-time 5 http://192.168.127.1/services/forwarder/all")
        #expect(inside.contains(#""local":"0.0.0.0:9090""#), "\(inside)")
        #expect(try guest.run("curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://192.168.127.1/stats") == "404")
        #expect(try host.run("\(api) -X POST -d '{\"local\":\":9090\"}' -w '%{http_code}' http://sovnet/services/forwarder/unexpose") == "200")
        // A unix socket on the host forwarded to the guest's TCP port.
        let path = work + "/forwarded.sock"
        #expect(try host.run("\(api) -X POST -d '{\"local\":\"\(path)\",\"remote\":\"192.168.127.2:8000\",\"protocol\":\"unix\"}' -w '%{http_code}' http://sovnet/services/forwarder/expose") == "200")
        let viaUnix = try host.run("python3 -c \(quote("import socket; s = socket.socket(socket.AF_UNIX); s.connect('\(path)'); print(s.recv(100).decode().strip())"))")
        #expect(viaUnix.trimmingCharacters(in: .whitespacesAndNewlines) == "web 192.168.127.1")
        #expect(try host.run("\(api) -X POST -d '{\"local\":\"\(path)\",\"protocol\":\"unix\"}' -w '%{http_code}' http://sovnet/services/forwarder/unexpose") == "200")
        #expect(!FileManager.default.fileExists(atPath: path), "the socket file is removed")
        #expect(try lab.client(host, "connect 127.0.0.1 9090 --timeout 2") == "ConnectionRefusedError 111")
    }
}
