import Foundation
import Testing

/// The serial transport end to end: `sovnet forward -url serial://…` on a
/// pseudo-terminal in a guest namespace, a stand-in hypervisor
/// (Tests/Peers/serial_hypervisor.py) relaying it to `sovnet proxy
/// --listen-serial` as QEMU's virtconsole chardev does, with bytes of
/// garbage on both sides first. Then the proxy restarts (the stand-in
/// reconnects) and the forwarder restarts, and traffic flows again each time.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
final class SerialTransportTests {
    static let hypervisor = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Peers/serial_hypervisor.py").path
    let work = uniqueTemporaryPath("serial")
    let host: TestNamespace
    let guest: TestNamespace
    var processes: [Spawned] = []

    init() throws {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        host = try TestNamespace("svt-shost")
        guest = try TestNamespace("svt-sguest")
    }

    deinit {
        processes.reversed().forEach { $0.stop() }
        guest.close()
        host.close()
        try? FileManager.default.removeItem(atPath: work)
    }

    func start(_ command: String, _ name: String) throws -> Spawned {
        let process = try Spawned(command, log: "\(work)/\(name)-\(processes.count).log")
        processes.append(process)
        return process
    }

    func startProxy() throws -> Spawned {
        let proxy = try start("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy "
                              + "--listen-serial unix://\(work)/serial.sock --dns-upstream 127.0.0.1:5999", "proxy")
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/serial.sock") }, "\(proxy.output)")
        return proxy
    }

    func startForward() throws -> Spawned {
        try start("ip netns exec \(guest.name) env -i \(CommandLineTests.binary.path) forward -url serial://\(work)/hvc1 "
                  + "--resolv-conf none -stop-if-exist ''", "forward")
    }

    /// 1 MB echoed through the NAT to the host side's loopback, checked byte for byte.
    func echo() throws -> String {
        try guest.run("python3 \(NATTests.peers) echo 192.168.127.254 7000 --size 1000000 --timeout 20", seconds: 40)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func leaseTrafficAndRestartsOfEitherEnd() throws {
        let server = try start("ip netns exec \(host.name) python3 -u \(NATTests.peers) echo-server 127.0.0.1 7000", "echo")
        #expect(waitUntil(5) { server.output.contains("ready") })
        var proxy = try startProxy()
        let hypervisor = try start("python3 -u \(Self.hypervisor) \(work)/hvc1 \(work)/serial.sock --garbage 3000 --lifetime 120",
                                   "hypervisor")
        #expect(waitUntil(5) { hypervisor.output.contains("connected 1") }, "\(hypervisor.output)")
        var forward = try startForward()
        #expect(waitUntil(15) { forward.output.contains("lease obtained: 192.168.127.2/24") },
                "\(forward.output)\n\(proxy.output)\n\(hypervisor.output)")
        #expect(proxy.output.contains("serial line synchronised: "), "the garbage was discarded: \(proxy.output)")
        #expect(try guest.run("ping -c 3 -i 0.2 -W 2 192.168.127.1").contains(" 0% packet loss"))
        #expect(try echo() == "ok")

        // The proxy restarts: the hypervisor reconnects, the guest hears a new session and confirms its lease.
        proxy.stop()
        #expect(waitUntil(5) { hypervisor.output.contains("disconnected") })
        proxy = try startProxy()
        #expect(waitUntil(10) { hypervisor.output.contains("connected 2") }, "\(hypervisor.output)")
        #expect(waitUntil(15) { forward.output.components(separatedBy: "synchronised with host session").count == 3 },
                "\(forward.output)")
        #expect(waitUntil(15) { forward.output.components(separatedBy: "lease obtained").count == 3 },
                "the lease confirmed with the new proxy: \(forward.output)")
        #expect(try echo() == "ok", "traffic after the proxy restarted\n\(forward.output)\n\(proxy.output)")

        // The forwarder is killed in the middle of a transfer and started again on the same port.
        let transfer = try start("ip netns exec \(guest.name) python3 \(NATTests.peers) echo 192.168.127.254 7000 "
                                 + "--size 50000000 --timeout 5", "transfer")
        usleep(500_000)
        forward.stop(SIGKILL)
        _ = transfer.wait(10)
        forward = try startForward()
        #expect(waitUntil(20) { forward.output.contains("lease obtained: 192.168.127.2/24") }, "\(forward.output)")
        #expect(try echo() == "ok", "traffic after the forwarder restarted\n\(forward.output)\n\(proxy.output)")
    }
}
