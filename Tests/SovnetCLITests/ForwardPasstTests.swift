import Foundation
import Testing

/// `sovnet forward` against passt, an independent implementation of the
/// qemu framing with its own DHCP server. passt runs in a namespace whose
/// only route leads to a second namespace the test made, so nothing it
/// forwards can leave; the guest runs with an empty environment (no PATH).
@Suite(.enabled(if: canMakeNamespaces && FileManager.default.isExecutableFile(atPath: "/usr/bin/passt"),
                "needs root, iproute2 and passt to run guest and host in network namespaces"),
       .serialized)
struct ForwardPasstTests {
    @Test func leaseRouteDNSAndTCPThroughPasst() throws {
        let work = NSTemporaryDirectory() + "sovnet-passt-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        chmod(work, 0o1777)  // passt drops to nobody and creates its socket here
        defer { try? FileManager.default.removeItem(atPath: work) }
        let upstream = try TestNamespace("svt-up")
        let host = try TestNamespace("svt-host")
        let guest = try TestNamespace("svt-guest")
        defer { [guest, host, upstream].forEach { $0.close() } }
        try "nameserver 10.99.0.1\n".write(toFile: "/etc/netns/\(host.name)/resolv.conf", atomically: true, encoding: .utf8)
        try shell("ip link add svt-up0 netns \(upstream.name) type veth peer name eth9 netns \(host.name)")
        try upstream.run("ip addr add 10.99.0.1/24 dev svt-up0 && ip link set svt-up0 up")
        try host.run("ip addr add 10.99.0.2/24 dev eth9 && ip link set eth9 up && ip route add default via 10.99.0.1")
        // An echo service on the host side's loopback, which passt maps the gateway address to.
        let echo = try Spawned("ip netns exec \(host.name) python3 -c \(quote(echoServer(port: 7777)))", log: work + "/echo.log")
        defer { echo.stop() }
        let passt = try Spawned("ip netns exec \(host.name) passt -f -q -s \(work)/passt.sock -t none -u none",
                                log: work + "/passt.log")
        defer { passt.stop() }
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/passt.sock") })

        let forward = try Spawned(
            "ip netns exec \(guest.name) env -i \(CommandLineTests.binary.path) forward -url unix://\(work)/passt.sock "
                + "--protocol qemu --resolv-conf \(work)/resolv.conf -stop-if-exist '' --pcap \(work)/guest.pcap",
            log: work + "/forward.log")
        defer { forward.stop() }
        let bound = waitUntil(10) { forward.output.contains("lease obtained") }
        #expect(bound, "no lease: \(forward.output)\npasst: \(passt.output)")
        guard bound else { return }

        let addresses = try guest.run("ip -4 -o addr show dev tap0")
        #expect(addresses.contains("inet 10.99.0.2/24"))
        let routes = try guest.run("ip route show default")
        #expect(routes.contains("default via 10.99.0.1 dev tap0"))
        let resolv = try String(contentsOfFile: work + "/resolv.conf", encoding: .utf8)
        #expect(resolv.contains("nameserver 10.99.0.1"))
        let link = try guest.run("ip -o link show dev tap0")
        #expect(link.contains("5a:94:ef:e4:0c:ee") && link.contains(",UP"))

        // A TCP exchange through passt's NAT to the echo service.
        let reply = try guest.run("python3 -c \(quote(echoClient(host: "10.99.0.1", port: 7777, rounds: 3)))")
        #expect(reply.contains("3 echoes"))

        // SIGTERM: DHCPRELEASE on the wire, address removed, exit status 0.
        #expect(forward.stop() == 0)
        #expect(forward.output.contains("released 10.99.0.2"))
        #expect(try !guest.run("ip -4 -o addr show dev tap0 || true").contains("10.99.0.2"))
        let summary = try shell("\(CommandLineTests.binary.path) pcap summary \(work)/guest.pcap")
        #expect(summary.contains("DHCP Release"))
        #expect(summary.contains("DHCP ACK"))
    }
}

/// A Python TCP echo server on 127.0.0.1 (bounded: it serves for 60 s).
func echoServer(port: Int, host: String = "127.0.0.1") -> String {
    """
    import socket, threading, time
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("\(host)", \(port))); s.listen(16); s.settimeout(60)
    print("ready", flush=True)
    def serve(c):
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    end = time.time() + 60
    while time.time() < end:
        try: c, _ = s.accept()
        except socket.timeout: break
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    """
}

/// A Python client that sends `rounds` lines, checks each echo, and prints a count.
func echoClient(host: String, port: Int, rounds: Int, pause: Double = 0) -> String {
    """
    import socket, time
    c = socket.create_connection(("\(host)", \(port)), timeout=20)
    for i in range(\(rounds)):
        line = ("echo %d " % i).encode() * 8 + b"\\n"
        c.sendall(line)
        got = b""
        while len(got) < len(line):
            got += c.recv(65536)
        assert got == line, (got, line)
        time.sleep(\(pause))
    print("%d echoes" % \(rounds))
    """
}
