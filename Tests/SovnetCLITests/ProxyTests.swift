import Foundation
import Testing

/// `sovnet proxy` with real guests: `sovnet forward` in namespaces (its own
/// DHCP client), and Debian's DHCP clients (busybox udhcpc, ISC dhclient,
/// dhcpcd) on taps joined to the proxy by `sovnet forward -preexisting`.
/// The proxy does no NAT yet, so it reaches nothing but its unix socket.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to run guests in network namespaces"), .serialized)
final class ProxyTests {
    let work = NSTemporaryDirectory() + "sovnet-proxy-\(getpid())"
    let proxy: Spawned
    var namespaces: [TestNamespace] = []
    var processes: [Spawned] = []

    init() throws {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        proxy = try Spawned("\(CommandLineTests.binary.path) proxy -listen unix://\(work)/vm.sock -pcap \(work)/proxy.pcap "
                            + "-pid-file \(work)/proxy.pid", log: work + "/proxy.log")
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/vm.sock") }, "\(proxy.output)")
    }

    deinit {
        processes.forEach { $0.stop() }
        proxy.stop()
        namespaces.forEach { $0.close() }
        try? FileManager.default.removeItem(atPath: work)
    }

    /// A guest namespace running `sovnet forward` with `arguments`.
    func guest(_ name: String, _ arguments: String = "", setup: String? = nil) throws -> (TestNamespace, Spawned) {
        let namespace = try TestNamespace(name)
        namespaces.append(namespace)
        if let setup { try namespace.run(setup) }
        let forward = try Spawned("ip netns exec \(namespace.name) env -i \(CommandLineTests.binary.path) forward "
                                  + "-url unix://\(work)/vm.sock -stop-if-exist '' \(arguments)",
                                  log: "\(work)/\(name).log")
        processes.append(forward)
        return (namespace, forward)
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
        #expect(forwardA.output.contains("in ") && proxy.output.contains("guest connected"))
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
