import Foundation
import Testing

/// `sovnet proxy` started as gvproxy's callers start gvproxy: a supervisor
/// told of readiness and guests on `-notification`, `:PORT` exposes on every
/// host address (and only loopback when confined), current gvproxy's nested
/// configuration file driving a real guest.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
struct GvproxyDropInTests {
    /// A supervisor listening on a unix socket (Tests/Peers/peers.py notification-listen).
    func supervisor(_ path: String) throws -> Spawned {
        let listener = try Spawned("python3 -u \(ProxyLab.peers) notification-listen \(path) 0 --timeout 120", log: path + ".log")
        #expect(waitUntil(5) { listener.output.contains("ready") }, "\(listener.output)")
        return listener
    }

    @Test func aSupervisorHearsReadinessAndEachGuestComeAndGo() throws {
        let directory = uniqueTemporaryPath("notify")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let listener = try supervisor(directory + "/notify.sock")
        defer { listener.stop() }
        let lab = try ProxyLab("ntf", proxyArguments: { _ in "-notification unix://\(directory)/notify.sock" })
        let mac = "5a:94:ef:e4:0c:ee"
        let established = #"message {"notification_type":"connection_established","mac_address":"\#(mac)"}"#
        #expect(waitUntil(5) { listener.output.contains(established) }, "\(listener.output)\n\(lab.proxy.output)")
        let lines = listener.output.split(separator: "\n").filter { $0.hasPrefix("message") }
        #expect(lines.first == #"message {"notification_type":"ready"}"#, "ready comes first: \(lines)")
        lab.forward.stop()
        let closed = #"message {"notification_type":"connection_closed","mac_address":"\#(mac)"}"#
        #expect(waitUntil(5) { listener.output.contains(closed) }, "\(listener.output)")

        // A listener that cannot be set up is the hypervisor's error, told before the proxy exits.
        let failing = try Spawned("\(CommandLineTests.binary.path) proxy -listen-qemu unix://\(directory)/missing/qemu.sock "
                                  + "-notification unix://\(directory)/notify.sock", log: directory + "/failing.log")
        #expect(waitUntil(10) { !failing.isRunning }, "\(failing.output)")
        #expect(failing.stop() != 0)
        #expect(waitUntil(5) { listener.output.contains(#"message {"notification_type":"hypervisor_error"}"#) },
                "\(listener.output)\n\(failing.output)")
    }

    @Test func exposesListenOnEveryHostAddressUnlessConfinedToLoopback() throws {
        let api = { (lab: ProxyLab) in "curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock" }
        let open = try ProxyLab("expo", world: true)
        try open.server(open.guest, "banner-server 192.168.127.2 8000 --text web")
        #expect(try open.host.run(#"\#(api(open)) -X POST -d '{"local":":9190","remote":"192.168.127.2:8000"}' -w '%{http_code}' http://sovnet/services/forwarder/expose"#) == "200")
        #expect(try open.client(open.host, "connect 10.55.0.2 9190") == "web 192.168.127.1", "reached on the host's own address")
        #expect(try open.client(open.host, "connect 127.0.0.1 9190") == "web 192.168.127.1", "and on loopback")
        #expect(try open.host.run("\(api(open)) http://sovnet/services/forwarder/all").contains(#""local":"0.0.0.0:9190""#))
        #expect(open.proxy.output.contains("forwarding tcp:0.0.0.0:9190=192.168.127.2:8000 for the host (every host address)"),
                "\(open.proxy.output)")

        // The cloud metadata service, played by the world at 169.254.169.254: refused unless -ec2-metadata-access.
        func metadataService(_ lab: ProxyLab) throws {
            try lab.world!.run("ip addr add 169.254.169.254/32 dev w0")
            try lab.host.run("ip route add 169.254.169.254/32 via 10.55.0.1")
            try lab.server(lab.world!, "banner-server 169.254.169.254 80 --text metadata")
        }
        try metadataService(open)
        #expect(try open.client(open.guest, "connect 169.254.169.254 80 --timeout 2") != "metadata 10.55.0.2")
        #expect(try open.nat()["drops"].flatMap { ($0 as? [String: Int])?["link-local-destination"] } ?? 0 > 0)

        let confined = try ProxyLab("expl", world: true, proxyArguments: { _ in "--expose-loopback-only -ec2-metadata-access" })
        try metadataService(confined)
        #expect(try confined.client(confined.guest, "connect 169.254.169.254 80") == "metadata 10.55.0.2", "-ec2-metadata-access")
        try confined.server(confined.guest, "banner-server 192.168.127.2 8000 --text web")
        #expect(try confined.host.run(#"\#(api(confined)) -X POST -d '{"local":":9191","remote":"192.168.127.2:8000"}' -w '%{http_code}' http://sovnet/services/forwarder/expose"#) == "200")
        #expect(try confined.client(confined.host, "connect 127.0.0.1 9191") == "web 192.168.127.1")
        #expect(try confined.client(confined.host, "connect 10.55.0.2 9191 --timeout 2") == "ConnectionRefusedError 111")
        #expect(try confined.host.run("\(api(confined)) http://sovnet/services/forwarder/all").contains(#""local":"127.0.0.1:9191""#))
        let refused = try confined.host.run(#"\#(api(confined)) -X POST -d '{"local":"10.55.0.2:9192","remote":"192.168.127.2:8000"}' -w ' %{http_code}' http://sovnet/services/forwarder/expose"#)
        #expect(refused.hasSuffix("409") && refused.contains("loopback only"), "\(refused)")
        #expect(try confined.host.run(#"\#(api(confined)) -X POST -d '{"local":":9191"}' -w '%{http_code}' http://sovnet/services/forwarder/unexpose"#) == "200",
                "':PORT' names the confined forward too")
    }

    @Test func currentGvproxysNestedConfigurationDrivesTheNetwork() throws {
        let directory = uniqueTemporaryPath("nested")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/gvproxy.yaml"
        try """
            log-level: debug
            pid-file: \(directory)/proxy.pid
            stack:
              mtu: 1400
              subnet: 10.20.0.0/24
              deviceIP: 10.20.0.9
              dns:
                - name: lab.test.
                  records:
                    - name: db
                      ip: 10.20.0.50
                    - regexp: '^api-[0-9]+$'
                      ip: 10.20.0.77
              forwards:
                "udp:127.0.0.1:8153": 10.20.0.9:5300
                "127.0.0.1:8122": 10.20.0.9:8000
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let lab = try ProxyLab("nest", proxyArguments: { _ in "-config \(config) -mtu 1300" })
        let address = try lab.guest.run("ip -4 -o addr show tap0")
        #expect(address.contains("10.20.0.9/24"), "the static lease at deviceIP: \(address)\n\(lab.proxy.output)")
        func run(_ command: String) throws -> String {
            try lab.guest.run(command).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let mtu = try run("cat /sys/class/net/tap0/mtu")
        #expect(mtu == "1300", "the flag overrides the file's mtu: \(mtu)")
        #expect(FileManager.default.fileExists(atPath: directory + "/proxy.pid"), "the file's pid-file")
        let dig = "dig +short +time=2 +tries=1 @10.20.0.1"
        let db = try run("\(dig) db.lab.test"), api = try run("\(dig) api-42.lab.test")
        let gateway = try run("\(dig) gateway.containers.internal")
        #expect(db == "10.20.0.50", "\(db)")
        #expect(api == "10.20.0.77", "a regexp record: \(api)")
        #expect(gateway == "10.20.0.1", "the built-in zones follow the subnet: \(gateway)")
        try lab.server(lab.guest, "banner-server 10.20.0.9 8000 --text web")
        #expect(try lab.client(lab.host, "connect 127.0.0.1 8122") == "web 10.20.0.1", "a TCP forward from the file")
        try lab.server(lab.guest, "udp-echo-server 10.20.0.9 5300")
        #expect(try lab.client(lab.host, "udp 127.0.0.1 8153 --size 1000 --count 2") == "ok ok", "a udp: forward from the file")
        #expect(lab.proxy.output.contains("debug"), "log-level: debug")
    }

    @Test func theUpstreamResolversFollowTheHostsResolvConf() throws {
        let directory = uniqueTemporaryPath("resolv")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "nameserver 127.0.0.1\nsearch first.test\n".write(toFile: directory + "/a.conf", atomically: true, encoding: .utf8)
        try "# a VPN's\nnameserver ::1\nsearch second.test\n".write(toFile: directory + "/b.conf", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: directory + "/resolv.conf", withDestinationPath: "a.conf")
        let lab = try ProxyLab("rslv", proxyArguments: { _ in "--resolv-conf \(directory)/resolv.conf" }, dnsUpstream: nil)
        try lab.server(lab.host, "dns-server 127.0.0.1 53 --text 10.1.1.1")
        try lab.server(lab.host, "dns-server ::1 53 --text 10.2.2.2")
        func ask() -> String {
            (try? lab.guest.run("dig +short +time=1 +tries=1 @192.168.127.1 anything.example").trimmingCharacters(in: .whitespacesAndNewlines)) ?? "failed"
        }
        #expect(ask() == "10.1.1.1", "\(lab.proxy.output)")
        let guestResolvConf = try lab.guest.run("cat /etc/resolv.conf")
        #expect(guestResolvConf.contains("search first.test"), "the host's search domains reach the guest (option 119): \(guestResolvConf)")

        // A VPN relinks /etc/resolv.conf to its own file, with an IPv6 resolver, while the guest keeps asking.
        try lab.host.run("ln -s b.conf \(directory)/next && mv -T \(directory)/next \(directory)/resolv.conf")
        var answers: [String] = []
        for _ in 0..<15 {
            answers.append(ask())
            if answers.last == "10.2.2.2" { break }
            usleep(200_000)
        }
        #expect(answers.allSatisfy { $0 == "10.1.1.1" || $0 == "10.2.2.2" }, "every query answered meanwhile: \(answers)")
        #expect(answers.last == "10.2.2.2", "the new resolver answers: \(answers)\n\(lab.proxy.output)")
        #expect(lab.proxy.output.contains("changed: DNS resolvers now [::1]:53 (search second.test)"), "\(lab.proxy.output)")

        // NetworkManager writes a new file and renames it over the link.
        try "nameserver 127.0.0.1\n".write(toFile: directory + "/c.conf", atomically: true, encoding: .utf8)
        try lab.host.run("mv -T \(directory)/c.conf \(directory)/resolv.conf")
        #expect(waitUntil(5) { ask() == "10.1.1.1" }, "\(lab.proxy.output)")
    }

    @Test func anUnknownFlagIsReportedBeforeAnythingElse() throws {
        let bad = try Spawned("\(CommandLineTests.binary.path) proxy -mtu 1 -bogus-flag", log: uniqueTemporaryPath("flag") + ".log")
        #expect(waitUntil(5) { !bad.isRunning })
        #expect(bad.output.contains("Unknown option '-bogus-flag'"), "\(bad.output)")
        #expect(!bad.output.contains("-mtu must be"), "\(bad.output)")
        let vpnkit = try Spawned("\(CommandLineTests.binary.path) proxy -listen-vpnkit unix:///tmp/vpnkit.sock",
                                 log: uniqueTemporaryPath("vpnkit") + ".log")
        #expect(waitUntil(5) { !vpnkit.isRunning })
        #expect(vpnkit.output.split(separator: "\n").first?.contains("HyperKit") == true, "one line says why: \(vpnkit.output)")
    }
}
