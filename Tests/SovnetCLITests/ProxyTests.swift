import Foundation
import Testing

/// `sovnet proxy` with real guests: `sovnet forward` in namespaces (its own
/// DHCP client), and Debian's DHCP clients (busybox udhcpc, ISC dhclient,
/// dhcpcd) on taps joined to the proxy by `sovnet forward -preexisting`.
/// The proxy runs in a namespace of its own with only a loopback interface,
/// and forwards DNS to a dnsmasq the test starts on that loopback.
@Suite(.enabled(if: canMakeNamespaces && FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq"),
                "needs root, iproute2 and dnsmasq to run guests in network namespaces"),
       .serialized)
final class ProxyTests {
    let work = uniqueTemporaryPath("proxy")
    /// Strings of a TXT record too large for a 512-byte UDP answer.
    static let bigText = (0..<12).map { "part-\($0)-" + String(repeating: "x", count: 60) }
    let host: TestNamespace
    let upstream: Spawned
    let proxy: Spawned
    var namespaces: [TestNamespace] = []
    var processes: [Spawned] = []

    init() throws {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        host = try TestNamespace("svt-phost")
        upstream = try Spawned(
            "ip netns exec \(host.name) dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces "
                + "--listen-address=127.0.0.1 --port=5353 --log-facility=- --log-queries --pid-file=\(work)/dnsmasq.pid "
                + "--local=/example.test/ --host-record=db.example.test,198.51.100.10,2001:db8::10 "
                + "--host-record=web.example.test,198.51.100.7 --cname=www.example.test,web.example.test "
                + "--txt-record=example.test,'v=spf1 -all' --mx-host=example.test,mail.example.test,10 "
                + "--srv-host=_http._tcp.example.test,web.example.test,80,0,5 "
                + "--ptr-record=7.100.51.198.in-addr.arpa,web.example.test "
                + "--txt-record=big.example.test,\(ProxyTests.bigText.map { "\"\($0)\"" }.joined(separator: ","))",
            log: work + "/upstream.log")
        proxy = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy -listen unix://\(work)/vm.sock "
                            + "-pcap \(work)/proxy.pcap -pid-file \(work)/proxy.pid --dns-upstream 127.0.0.1:5353",
                            log: work + "/proxy.log")
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/vm.sock") }, "\(proxy.output)")
    }

    deinit {
        processes.forEach { $0.stop() }
        proxy.stop()
        upstream.stop()
        namespaces.forEach { $0.close() }
        host.close()
        try? FileManager.default.removeItem(atPath: work)
    }

    /// A guest namespace running `sovnet forward` with `arguments` against the proxy at `socket`.
    func guest(_ name: String, _ arguments: String = "", socket: String = "vm.sock",
               setup: String? = nil) throws -> (TestNamespace, Spawned) {
        let namespace = try TestNamespace(name)
        namespaces.append(namespace)
        if let setup { try namespace.run(setup) }
        let forward = try Spawned("ip netns exec \(namespace.name) env -i \(CommandLineTests.binary.path) forward "
                                  + "-url unix://\(work)/\(socket) -stop-if-exist '' \(arguments)",
                                  log: "\(work)/\(name).log")
        processes.append(forward)
        return (namespace, forward)
    }

    /// Another proxy in the host namespace, listening on `socket` (it must appear within 5 s).
    /// The main proxy holds the SSH forward's port 2222 there, so this one has none.
    func extraProxy(_ socket: String, _ arguments: String) throws -> Spawned {
        let proxy = try Spawned(
            "ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy -listen unix://\(work)/\(socket) "
                + "--dns-upstream 127.0.0.1:5353 -ssh-port -1 \(arguments)",
            log: "\(work)/\(socket).log")
        processes.append(proxy)
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: "\(work)/\(socket)") }, "\(proxy.output)")
        return proxy
    }

    @Test func staticAndDynamicLeasesPingsAndCapture() throws {
        let (first, forwardA) = try guest("svt-pa")
        let (second, forwardB) = try guest("svt-pb", "-mac 02:00:00:00:00:22")
        #expect(waitUntil(10) { forwardA.output.contains("lease obtained") && forwardB.output.contains("lease obtained") },
                "\(forwardA.output)\n\(forwardB.output)\n\(proxy.output)")
        #expect(try first.run("ip -4 -o addr show dev tap0").contains("inet 192.168.127.2/24"), "gvproxy's static lease")
        #expect(try second.run("ip -4 -o addr show dev tap0").contains("inet 192.168.127.3/24"), "the first of the pool")
        #expect(try first.run("ip route show default").contains("default via 192.168.127.1"))
        #expect(try first.run("ping -c 3 -i 0.2 -W 2 192.168.127.1").contains("3 received"))
        #expect(try second.run("ping -c 3 -i 0.2 -W 2 192.168.127.2").contains("3 received"), "guests reach each other")
        #expect(forwardA.output.contains("in ") && proxy.output.contains("connection on unix:"))
        let pid = try String(contentsOfFile: work + "/proxy.pid", encoding: .utf8)
        #expect(Int32(pid.trimmingCharacters(in: .whitespacesAndNewlines)) == proxy.pid)

        // The capture holds the switch's traffic, and tshark reads it.
        forwardA.stop()
        forwardB.stop()
        let summary = try shell("tshark -r \(work)/proxy.pcap -Y 'icmp.type == 0' -T fields -e ip.src -e ip.dst")
        #expect(summary.contains("192.168.127.1\t192.168.127.2"))
        #expect(summary.contains("192.168.127.2\t192.168.127.3"))
        let dhcp = try shell("tshark -r \(work)/proxy.pcap -Y 'dhcp.option.dhcp == 7' -T fields -e dhcp.ip.client")
        #expect(dhcp.contains("192.168.127.2") && dhcp.contains("192.168.127.3"), "both leases released")
    }

    /// A resolver with no route to it does not stop the proxy: names it
    /// would answer get SERVFAIL once the resolver's timeout passes, local
    /// names still resolve.
    /// One log format everywhere, chosen by flag or environment: JSON lines
    /// naming the subsystem that speaks, leases and releases at the default
    /// level, and the forwarder's text lines at the level it was given.
    @Test func logsNameTheirSubsystemAndTellLeases() throws {
        let lab = try ProxyLab("plog", proxyArguments: { _ in "--log-format json" },
                               forwardArguments: "--log-level notice")
        let lease = #""subsystem":"dhcp","time":"[^"]+"\}$"#
        #expect(waitUntil(5) { lab.proxy.output.contains(#""message":"lease 192.168.127."#) }, "\(lab.proxy.output)")
        lab.forward.stop()
        #expect(waitUntil(5) { lab.proxy.output.range(of: #"released on port \d+"#, options: .regularExpression) != nil },
                "\(lab.proxy.output)")
        var subsystems: Set<String> = []
        for line in lab.proxy.output.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["time"] is String && object["level"] is String && object["message"] is String, "\(line)")
            subsystems.insert(object["subsystem"] as? String ?? "")
        }
        #expect(subsystems.isSuperset(of: ["switch", "dhcp", "dns"]), "\(subsystems)")
        let leaseLine = lab.proxy.output.split(separator: "\n").first { $0.contains(#""message":"lease 192.168.127."#) }
        #expect(leaseLine.map { $0.range(of: lease, options: .regularExpression) != nil && $0.contains(#""level":"info""#) } == true,
                "\(leaseLine ?? "")")
        let forward = lab.forward.output
        #expect(forward.range(of: #"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z notice dhcp: lease obtained: "#,
                              options: .regularExpression) != nil, "\(forward)")
        #expect(!forward.contains(" info ") && !forward.contains("[SovnetDrivers]"), "nothing below notice: \(forward)")
        let refused = try shell("SOVNET_LOG_LEVEL=chatty \(CommandLineTests.binary.path) forward -url unix:///nonexistent "
                                + "-stop-if-exist '' 2>&1 || true")
        #expect(refused.contains("--log-level must be one of trace, debug, info, notice, warning, error, critical; not 'chatty'"),
                "\(refused)")
    }

    /// A Linux guest's own SLAAC through `sovnet forward`: the kernel
    /// solicits a router, the gateway advertises fd00::/64, the guest takes
    /// an address in it, resolves the gateway's link-layer address and pings
    /// it over IPv6; no default IPv6 route yet (the NAT carries IPv4 only),
    /// so an IPv6 address beyond the link fails at once.
    @Test func aLinuxGuestConfiguresIPv6BySLAACAndPingsTheGateway() throws {
        let lab = try ProxyLab("pv6")
        // sovnet forward solicits an advertisement once it reaches the proxy; the kernel does the rest.
        #expect(waitUntil(15) { ((try? lab.guest.run("ip -6 -br addr show dev tap0 scope global -tentative")) ?? "").contains("fd00::") },
                "\((try? lab.guest.run("ip -6 addr show dev tap0")) ?? "")\n\(lab.proxy.output)")
        #expect(waitUntil(5) { ((try? lab.guest.run("ip -6 route show")) ?? "").contains("default via fe80::") })
        let route = try lab.guest.run("ip -6 route show")
        #expect(route.contains("fd00::/64 dev tap0") && route.contains("default via fe80::"), "\(route)")
        // The proxy's namespace has no IPv6 route: the gateway says so at once.
        let beyond = try lab.guest.run("ping -6 -c 1 -W 3 2001:db8::1 2>&1 || true")
        #expect(beyond.contains("Destination unreachable: No route"), "\(beyond)")
        let ping = try lab.guest.run("ping -6 -c 2 -i 0.2 -W 2 fd00::1 || true")
        #expect(ping.contains(" 0% packet loss"), "\(ping)")
        let resolv = try String(contentsOfFile: "/etc/netns/\(lab.guest.name)/resolv.conf", encoding: .utf8)
        #expect(resolv.contains("nameserver 192.168.127.1\nnameserver fd00::1\n"), "the advertisement's DNS server after the lease's: \(resolv)")
    }

    /// `--no-ipv6`: the gateway is silent over IPv6, as gvproxy's is.
    @Test func withoutIPv6TheGatewayIsSilentOverIt() throws {
        let lab = try ProxyLab("pno6", proxyArguments: { _ in "--no-ipv6" })
        let addresses = (try? lab.guest.run("sleep 3; ip -6 -br addr show dev tap0 scope global")) ?? ""
        #expect(!addresses.contains("fd00::"), "no advertisement, no SLAAC address: \(addresses)")
        #expect(!(try lab.guest.run("ping -6 -c 1 -W 1 -I tap0 fe80::5894:efff:fee4:cdd || true")).contains(" 0% packet loss"))
    }

    @Test func anUnreachableUpstreamResolver() throws {
        let extra = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy -listen unix://\(work)/noroute.sock "
                                + "--dns-upstream 10.255.255.53 -ssh-port -1", log: "\(work)/noroute.log")
        processes.append(extra)
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: "\(work)/noroute.sock") }, "\(extra.output)")
        #expect(extra.output.contains("DNS upstream 10.255.255.53:53: connect"), "\(extra.output)")
        let (namespace, forward) = try guest("svt-pnor", socket: "noroute.sock")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        let asked = Date()
        let far = try namespace.run("dig +tries=1 +time=10 @192.168.127.1 far.example.test A", seconds: 20)
        #expect(far.contains("status: SERVFAIL"), "\(far)")
        // The resolver's own timeout is 2 s: the answer comes then, not at dig's 10.
        #expect(Date().timeIntervalSince(asked) < 5, "SERVFAIL after \(Date().timeIntervalSince(asked)) s")
        let near = try namespace.run("dig +short +time=5 @192.168.127.1 gateway.containers.internal A")
        #expect(near.contains("192.168.127.1"), "\(near)")
        #expect(extra.isRunning)
    }

    /// Offloads: a guest that asks gets them (its TCP superframes cross as
    /// they are); one with `--no-offload` and one against a proxy that
    /// refuses (as gvproxy does, with a 404) stay plain. Between an
    /// offloading guest and a plain one the switch finishes what the headers
    /// left undone: 8 MB echoed across, checked byte for byte, with ping.
    @Test func offloadedAndPlainGuestsTalkThroughTheSwitch() throws {
        let (offloading, forwardA) = try guest("svt-poff")
        let (plain, forwardB) = try guest("svt-ppln", "-mac 02:00:00:00:00:33 --no-offload")
        #expect(waitUntil(10) { forwardA.output.contains("lease obtained") && forwardB.output.contains("lease obtained") },
                "\(forwardA.output)\n\(forwardB.output)")
        #expect(forwardA.output.contains("(vm framing, offloads)"), "\(forwardA.output)")
        #expect(forwardB.output.contains("(vm framing)") && !forwardB.output.contains("offloads"), "\(forwardB.output)")
        #expect(proxy.output.contains("carries offloads"))
        let server = try Spawned("ip netns exec \(plain.name) python3 -u \(NATTests.peers) echo-server 192.168.127.3 7200",
                                 log: work + "/plain-echo.log")
        processes.append(server)
        #expect(waitUntil(5) { server.output.contains("ready") })
        #expect(try offloading.run("python3 \(NATTests.peers) echo 192.168.127.3 7200 --size 8000000", seconds: 60)
            .trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "superframes segmented for the plain guest, and back")
        #expect(try plain.run("ping -c 3 -i 0.2 -W 2 192.168.127.2").contains(" 0% packet loss"))
        // A second of iperf3 makes the offloading guest's kernel send superframes; the switch saw them
        // (the plain guest's kernel takes no frame above its MTU, so they reached it as segments).
        let iperf = try Spawned("ip netns exec \(plain.name) iperf3 -s -1 -B 192.168.127.3 --forceflush", log: work + "/iperf.log")
        processes.append(iperf)
        #expect(waitUntil(5) { iperf.output.contains("listening") }, "\(iperf.output)")
        #expect(try offloading.run("iperf3 -c 192.168.127.3 -t 1", seconds: 20).contains("receiver"))
        let superframes = try shell("tshark -r \(work)/proxy.pcap -Y 'ip.src == 192.168.127.2 && ip.dst == 192.168.127.3 && frame.len > 1514' "
                                    + "-T fields -e frame.len 2>/dev/null | wc -l")
        #expect((Int(superframes.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 0, "superframes: \(superframes)")

        let refusing = try extraProxy("refusing.sock", "--no-offload")
        let (_, refused) = try guest("svt-pref", socket: "refusing.sock")
        #expect(waitUntil(10) { refused.output.contains("lease obtained") }, "\(refused.output)\n\(refusing.output)")
        #expect(refused.output.contains("(vm framing)") && !refused.output.contains("offloads"),
                "asked, was refused, connected plainly: \(refused.output)")
    }

    /// A short lease: sovnet forward renews at T1 with a unicast REQUEST and keeps its address.
    @Test func renewal() throws {
        _ = try extraProxy("short.sock", "--lease-time 10")
        let (namespace, forward) = try guest("svt-pren", socket: "short.sock")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        #expect(waitUntil(12) { forward.output.contains("lease renewed: 192.168.127.2 for 10s") }, "\(forward.output)")
        #expect(try namespace.run("ip -4 -o addr show dev tap0").contains("inet 192.168.127.2/24"))
    }

    /// dhclient starts with a lease from another network: INIT-REBOOT, NAK, then a fresh lease.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/dhclient"), "dhclient is not installed"))
    func nakForAnAddressOfAnotherNetwork() throws {
        let (namespace, forward) = try guest(
            "svt-pnak", "-preexisting",
            setup: "ip tuntap add dev tap0 mode tap && ip link set tap0 address 02:00:00:00:00:55 up")
        #expect(waitUntil(5) { forward.output.contains("connected to") }, "\(forward.output)")
        try """
            lease {
              interface "tap0";
              fixed-address 10.9.9.9;
              option subnet-mask 255.255.255.0;
              option dhcp-server-identifier 10.9.9.1;
              renew 4 2037/1/1 00:00:01;
              rebind 4 2037/1/1 00:00:01;
              expire 4 2037/1/1 00:00:01;
            }
            """.write(toFile: work + "/nak.leases", atomically: true, encoding: .utf8)
        let output = try namespace.run("dhclient -1 -v -sf /bin/true -lf \(work)/nak.leases -pf \(work)/nak.pid tap0 2>&1")
        #expect(output.contains("DHCPREQUEST for 10.9.9.9"), "\(output)")
        #expect(output.contains("DHCPNAK from 192.168.127.1"), "\(output)")
        #expect(output.contains("bound to 192.168.127.3"), "\(output)")
    }

    /// gvproxy's -subnet, -gatewayIP and -hostIP, and -log-file.
    @Test func customSubnet() throws {
        _ = try extraProxy("custom.sock", "-subnet 10.42.0.0/16 -gatewayIP 10.42.0.9 -hostIP 10.42.7.7 "
                           + "-log-file \(work)/custom.log")
        let (namespace, forward) = try guest("svt-psub", socket: "custom.sock")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        #expect(try namespace.run("ip -4 -o addr show dev tap0").contains("inet 10.42.0.2/16"))
        #expect(try namespace.run("ip route show default").contains("default via 10.42.0.9"))
        #expect(try namespace.run("ping -c 1 -W 2 10.42.0.9").contains("1 received"))
        // The gateway answers ARP for the host alias (the echo goes on to the NAT, whose ping sockets this namespace does not allow) …
        #expect(try namespace.run("ping -c 1 -W 1 10.42.7.7 >/dev/null || true; ip neigh show 10.42.7.7")
                    .contains("lladdr 5a:94:ef:e4:0c:dd"))
        // … and its DNS names it.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/dig") {
            #expect(try namespace.run("dig @10.42.0.9 +short +tries=1 host.containers.internal")
                        .trimmingCharacters(in: .whitespacesAndNewlines) == "10.42.7.7")
        }
        let log = try String(contentsOfFile: work + "/custom.log", encoding: .utf8)
        #expect(log.contains("connection on unix:"))
    }

    /// gvproxy's configuration file: a DNS zone with a record and a default,
    /// and search domains that reach the guest's resolv.conf through DHCP.
    @Test func configurationFile() throws {
        try """
            dns:
              - name: example.internal.
                records:
                  - name: db
                    ip: 192.168.127.50
                defaultIP: 192.168.127.254
            dnsSearchDomains: [example.internal, vm.internal]
            """.write(toFile: work + "/gvproxy.yaml", atomically: true, encoding: .utf8)
        _ = try extraProxy("configured.sock", "-config \(work)/gvproxy.yaml")
        let (namespace, forward) = try guest("svt-pcfg", socket: "configured.sock")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        let resolv = try String(contentsOfFile: "/etc/netns/\(namespace.name)/resolv.conf", encoding: .utf8)
        #expect(resolv.contains("search example.internal vm.internal"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/dig") {
            #expect(try namespace.run("dig @192.168.127.1 +short db.example.internal").contains("192.168.127.50"))
            #expect(try namespace.run("dig @192.168.127.1 +short anything.example.internal").contains("192.168.127.254"))
        }
    }

    /// The control API over HTTP: on the -listen socket shared with guests
    /// and on a --services socket of its own.
    @Test func controlAPI() throws {
        _ = try extraProxy("shared.sock", "--services unix://\(work)/api.sock")
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/api.sock") })
        let (namespace, forward) = try guest("svt-papi", "-mac 02:00:00:00:00:77", socket: "shared.sock")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        func curl(_ socket: String, _ arguments: String) throws -> String {
            try shell("curl -s --max-time 5 --unix-socket \(work)/\(socket) \(arguments)")
        }
        #expect(try curl("shared.sock", "http://sovnet/services/dhcp/leases") == #"{"192.168.127.3":"02:00:00:00:00:77"}"#)
        #expect(try curl("api.sock", "http://sovnet/cam").contains(#""02:00:00:00:00:77":"#))
        #expect(try curl("api.sock", "-X POST -d '{\"Name\":\"api.internal.\",\"Records\":[{\"Name\":\"db\",\"IP\":\"192.168.127.70\"}]}' "
                         + "-w '%{http_code}' http://sovnet/services/dns/add") == "200")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/dig") {
            #expect(try namespace.run("dig @192.168.127.1 +short db.api.internal").contains("192.168.127.70"))
        }
        #expect(try curl("api.sock", "-d '{oops' -w ' %{http_code}' http://sovnet/services/dns/add").hasSuffix(" 400"))
        #expect(try curl("shared.sock", "http://sovnet/stats").contains(#""acks":1"#))
        // The guest's connection still works after API calls on the same socket.
        #expect(try namespace.run("ping -c 1 -W 2 192.168.127.1").contains("1 received"))
    }

    /// Every record type through the gateway's DNS, over UDP and TCP: local zones answered by
    /// the proxy, the rest relayed from the upstream dnsmasq.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dig"), "dig is not installed"))
    func dnsThroughTheGateway() throws {
        let (namespace, forward) = try guest("svt-pdns")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        func dig(_ query: String) throws -> String {
            try namespace.run("dig @192.168.127.1 +short +tries=1 +time=3 \(query)")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        for transport in ["+notcp", "+tcp"] {
            #expect(try dig("\(transport) gateway.containers.internal A") == "192.168.127.1")
            #expect(try dig("\(transport) host.docker.internal A") == "192.168.127.254")
            #expect(try dig("\(transport) db.example.test A") == "198.51.100.10")
            #expect(try dig("\(transport) db.example.test AAAA") == "2001:db8::10")
            #expect(try dig("\(transport) www.example.test A") == "web.example.test.\n198.51.100.7")
            #expect(try dig("\(transport) example.test TXT") == "\"v=spf1 -all\"")
            #expect(try dig("\(transport) example.test MX") == "10 mail.example.test.")
            #expect(try dig("\(transport) _http._tcp.example.test SRV") == "0 5 80 web.example.test.")
            #expect(try dig("\(transport) -x 198.51.100.7") == "web.example.test.")
            let missing = try namespace.run("dig @192.168.127.1 \(transport) +tries=1 +time=3 missing.example.test A")
            #expect(missing.contains("status: NXDOMAIN"), "\(transport): \(missing)")
        }
        #expect(upstream.output.contains("query[TXT] example.test from 127.0.0.1"))
        // A UDP answer too large for 512 bytes, truncated by upstream and asked again over TCP.
        let big = try namespace.run("dig @192.168.127.1 +noedns +tries=1 +time=3 big.example.test TXT")
        #expect(big.contains("Truncated, retrying in TCP mode"), "\(big)")
        #expect(ProxyTests.bigText.allSatisfy { big.contains($0) }, "\(big)")
        #expect(try dig("+tcp nothing.invalid A").isEmpty, "upstream's answer (REFUSED) relayed, not made up")
    }

    /// Debian's DHCP clients on a tap that `sovnet forward -preexisting` joins
    /// to the proxy (a fresh proxy for each, so each gets the pool's first address).
    /// Their scripts are /bin/true where they take one; dhcpcd configures the
    /// tap and its resolv.conf hook writes the namespace's private file.
    @Test(arguments: [
        ("udhcpc", "udhcpc -i tap0 -f -q -n -t 3 -T 1 -s /bin/true", "lease of 192.168.127.3 obtained"),
        ("dhclient", "dhclient -1 -v -sf /bin/true -lf WORK/dhclient.leases -pf WORK/dhclient.pid tap0",
         "bound to 192.168.127.3"),
        ("dhcpcd", "dhcpcd -4 -1 -B -t 10 -f /dev/null tap0", "leased 192.168.127.3"),
    ])
    func debianClients(client: String, command: String, expected: String) throws {
        let tool = String(command.split(separator: " ")[0])
        guard (try? shell("command -v \(tool)")) != nil else {
            print("skipping \(client): \(tool) is not installed")
            return
        }
        let (namespace, forward) = try guest(
            "svt-c\(client.prefix(3))", "-preexisting",
            setup: "ip tuntap add dev tap0 mode tap && ip link set tap0 address 02:00:00:00:00:44 up")
        #expect(waitUntil(5) { forward.output.contains("connected to") }, "\(forward.output)")
        let output = try namespace.run(command.replacingOccurrences(of: "WORK", with: work) + " 2>&1")
        #expect(output.contains(expected), "\(client): \(output)\nproxy: \(proxy.output)")
    }
}
