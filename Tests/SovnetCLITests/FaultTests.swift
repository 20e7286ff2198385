import Foundation
import Testing

/// What the proxy and the forwarder do when things go wrong around them: a
/// proxy killed and started again, a host service that resets, a capture
/// file that cannot be written, and the signals that end them.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
final class FaultTests {
    /// The tap's IPv4 addresses in the guest.
    static func addresses(_ lab: ProxyLab) -> String {
        (try? lab.guest.run("ip -4 -o addr show dev tap0")) ?? ""
    }

    /// The proxy dies (SIGKILL, leaving its socket file) while a guest moves
    /// data, and is started again on the same path: the forwarder keeps its
    /// tap and address throughout, reconnects, has its lease confirmed, and
    /// a new connection works within 2 s of the new proxy listening.
    @Test func aProxyKilledAndStartedAgainDuringTraffic() throws {
        let lab = try ProxyLab("restart")
        try lab.server(lab.host, "echo-server 127.0.0.1 7300")
        let traffic = try Spawned("ip netns exec \(lab.guest.name) python3 \(ProxyLab.peers) echo 192.168.127.254 7300 "
                                  + "--size 200000000 --timeout 5", log: lab.work + "/traffic.log")
        lab.processes.append(traffic)
        usleep(500_000)
        let leaseLines = lab.forward.output.components(separatedBy: "lease obtained").count
        try lab.restartProxy(killingWith: SIGKILL)
        #expect(Self.addresses(lab).contains("192.168.127.2/24"), "the tap kept its address while the proxy was gone")
        let opened = try lab.client(lab.guest, "until-open 192.168.127.254 7300 --timeout 10", seconds: 20)
        let seconds = Double(opened.split(separator: " ").dropFirst(2).first ?? "") ?? .infinity
        #expect(seconds < 2, "\(opened)\n\(lab.forward.output.suffix(1500))")
        print("fault: proxy restarted, a new flow \(opened)")
        #expect(waitUntil(5) { lab.forward.output.components(separatedBy: "lease obtained").count > leaseLines },
                "the lease confirmed with the new proxy: \(lab.forward.output.suffix(1500))")
        #expect(lab.forward.output.contains("connection to host lost; reconnecting"))
        #expect(Self.addresses(lab).contains("192.168.127.2/24"))
        let leases = try lab.host.run("curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock http://sovnet/leases")
        #expect(leases.contains("192.168.127.2"), "the new proxy knows the lease: \(leases)")
        #expect(traffic.wait(15) != nil, "the transfer cut by the proxy's death ended")
    }

    /// A host service that takes some bytes and resets: the guest's
    /// connection is reset promptly, and the next one works.
    @Test func aHostServiceThatResetsMidStream() throws {
        let lab = try ProxyLab("reset")
        try lab.server(lab.host, "reset-server 127.0.0.1 7310 --size 100000")
        let outcome = try lab.client(lab.guest, "reset 192.168.127.254 7310 --size 4000000 --timeout 10", seconds: 20)
        #expect(outcome.hasPrefix("ConnectionResetError after "), "\(outcome)")
        let seconds = Double(outcome.split(separator: " ").dropLast().last ?? "") ?? .infinity
        #expect(seconds < 2, "the RST reached the guest in \(seconds) s")
        print("fault: host reset, the guest saw \(outcome)")
        try lab.server(lab.host, "echo-server 127.0.0.1 7311")
        #expect(try lab.client(lab.guest, "echo 192.168.127.254 7311 --size 100000") == "ok")
    }

    /// Both captures on a file system that fills up (a 256 KiB tmpfs): each
    /// says once that it stopped, and traffic goes on whole.
    @Test func aCaptureThatCannotBeWrittenStopsAlone() throws {
        let full = uniqueTemporaryPath("full")
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: true)
        try shell("mount -t tmpfs -o size=256k sovnet-test \(full)")
        defer {
            _ = try? shell("umount \(full)")
            try? FileManager.default.removeItem(atPath: full)
        }
        let lab = try ProxyLab("pcapfull", proxyArguments: { _ in "-pcap \(full)/proxy.pcap" },
                               forwardArguments: "--pcap \(full)/forward.pcap")
        try lab.server(lab.host, "echo-server 127.0.0.1 7320")
        #expect(try lab.client(lab.guest, "echo 192.168.127.254 7320 --size 4000000") == "ok")
        #expect(try lab.client(lab.guest, "echo 192.168.127.254 7320 --size 1000000") == "ok", "and after")
        for (name, output) in [("proxy", lab.proxy.output), ("forward", lab.forward.output)] {
            let lines = output.split(separator: "\n").filter { $0.contains("capture stopped") }
            #expect(lines.count == 1, "\(name): \(lines)")
            #expect(lines.first?.contains("No space left on device") == true, "\(name): \(lines)")
        }
    }

    /// SIGTERM and SIGINT end each side cleanly: the forwarder releases its
    /// lease and exits 0; the proxy exits 0 and removes its socket and PID file.
    @Test(arguments: [SIGTERM, SIGINT])
    func signalsEndBothSidesCleanly(_ signal: Int32) throws {
        let lab = try ProxyLab("signal\(signal)", proxyArguments: { work in "-pid-file \(work)/proxy.pid" })
        #expect(FileManager.default.fileExists(atPath: lab.work + "/proxy.pid"))
        #expect(lab.forward.stop(signal) == 0, "\(lab.forward.output.suffix(800))")
        #expect(lab.forward.output.contains("released 192.168.127.2"), "\(lab.forward.output.suffix(800))")
        let leases = try lab.host.run("curl -s --max-time 5 --unix-socket \(lab.work)/vm.sock http://sovnet/leases")
        #expect(leases.trimmingCharacters(in: .whitespacesAndNewlines) == "{}", "the proxy saw the release: \(leases)")
        #expect(lab.proxy.stop(signal) == 0, "\(lab.proxy.output.suffix(800))")
        #expect(!FileManager.default.fileExists(atPath: lab.work + "/vm.sock"), "the socket is removed")
        #expect(!FileManager.default.fileExists(atPath: lab.work + "/proxy.pid"), "the PID file is removed")
    }
}
