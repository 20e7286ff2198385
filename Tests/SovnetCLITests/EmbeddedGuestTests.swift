import Foundation
import Testing

/// The guest program built as Embedded Swift by scripts/build-guest-embedded
/// (issue #19): the same sources as `sovnet-guest`, no Swift runtime, linked
/// statically with musl. scripts/test builds it before the tests; without it they skip.
@Suite struct EmbeddedGuestTests {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/release/sovnet-guest-embedded").path
    static var built: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    @Test(.enabled(if: built, "run scripts/build-guest-embedded first (scripts/test does)"))
    func itNeedsNoLibrariesAndParsesAsTheOtherBuildDoes() throws {
        let libraries = try shell("ldd \(Self.binary) 2>&1 || true")
        #expect(libraries.contains("not a dynamic executable"), "\(libraries)")
        let help = try shell("\(Self.binary) --help")
        #expect(help.contains("forward") && help.contains("init") && !help.contains("proxy"), "\(help)")
        let embeddedHelp = try shell("\(Self.binary) forward --help").replacingOccurrences(of: "sovnet-guest-embedded", with: "sovnet-guest")
        #expect(try embeddedHelp == shell("\(GuestBinaryTests.binary) forward --help"))
        let usage = try shell("\(Self.binary) forward -mtu 5 2>&1; echo status $?")
        #expect(usage.contains("-mtu must be between 68 and 65521") && usage.contains("status 64"), "\(usage)")
        let level = try shell("\(Self.binary) forward --log-level loud 2>&1; echo status $?")
        #expect(level.contains("trace, debug, info, notice, warning, error, critical") && level.contains("status 64"), "\(level)")
        let filter = try shell("unshare -n \(Self.binary) forward -stop-if-exist '' -url unix:///nonexistent/vm.sock "
                               + "--resolv-conf none --pcap /dev/null --pcap-filter arp 2>&1; echo status $?")
        #expect(filter.contains("this static build of the guest program loads no libraries") && filter.contains("status 1"),
                "\(filter)")
        let missing = try shell("\(Self.binary) nothing 2>&1; echo status $?")
        #expect(missing.contains("no command 'nothing'; there are forward, init") && missing.contains("status 64"), "\(missing)")
    }

    /// A guest namespace on the Embedded build: a lease, resolv.conf, ping,
    /// TCP through the NAT both ways, with offloads (virtio-net headers) on,
    /// and a log in the same format as the other build's, JSON included.
    @Test(.enabled(if: built && canMakeNamespaces, "needs the Embedded build, root and network namespaces"))
    func aGuestTakesItsLeaseAndCarriesTraffic() throws {
        let lab = try ProxyLab("emb", proxyArguments: { _ in "" }, forwardArguments: "--no-offload")
        let guest = try TestNamespace("svt-emb2")
        defer { guest.close() }
        let resolvConf = lab.work + "/embedded-resolv.conf"
        let forward = try Spawned("ip netns exec \(guest.name) env -i \(Self.binary) forward -url unix://\(lab.work)/vm.sock "
                                  + "-mac 02:00:00:00:00:62 -stop-if-exist '' --resolv-conf \(resolvConf) --log-format json",
                                  log: lab.work + "/embedded.log")
        defer { forward.stop() }
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        #expect(forward.output.contains(#""subsystem":"dhcp""#) && forward.output.contains(#""level":"notice""#),
                "\(forward.output)")
        #expect(forward.output.contains("offloads"), "the host granted virtio-net headers: \(forward.output)")
        #expect(waitUntil(5) { (try? String(contentsOfFile: resolvConf, encoding: .utf8))?.contains("nameserver 192.168.127.1") == true })
        #expect(try guest.run("ping -c 2 -i 0.2 -W 2 192.168.127.1 || true").contains(" 0% packet loss"))
        try lab.server(lab.host, "echo-server 127.0.0.1 7300")
        #expect(try lab.client(guest, "echo 192.168.127.254 7300 --size 4000000") == "ok", "guest to host through the NAT")
        try lab.server(guest, "echo-server 0.0.0.0 7301")
        let address = try guest.run("ip -4 -o addr show tap0 | awk '{print $4}' | cut -d/ -f1")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try lab.client(lab.guest, "echo \(address) 7301 --size 2000000") == "ok", "another guest to this one")
        #expect(forward.stop() == 0)
        #expect(forward.output.contains("released"), "the lease given back on SIGTERM: \(forward.output)")
    }

    /// With no DHCP server answering, the DISCOVERs go out again 3 to 5 s
    /// apart (RFC 2131 §4.1: 4 s ± 1 s): the timers run on the Embedded
    /// build's own monotonic clock. tshark reads the capture it wrote.
    @Test(.enabled(if: built && geteuid() == 0, "needs the Embedded build and root for a network namespace"))
    func itRetransmitsDiscoversOnItsOwnClock() throws {
        let work = uniqueTemporaryPath("emb-dhcp")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let sink = try Spawned("socat -u UNIX-LISTEN:\(work)/vm.sock,fork /dev/null", log: work + "/sink.log")
        defer { sink.stop() }
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/vm.sock") })
        _ = try shell("unshare -n timeout -s TERM 6 \(Self.binary) forward -stop-if-exist '' -url unix://\(work)/vm.sock "
                      + "--no-offload --resolv-conf none -mac 02:00:00:00:00:63 --pcap \(work)/dhcp.pcap 2>&1; echo status $?", seconds: 20)
        let discovers = try shell("tshark -r \(work)/dhcp.pcap -Y 'dhcp.option.dhcp == 1' -T fields "
                                  + "-e frame.time_relative -e dhcp.hw.mac_addr -E occurrence=f 2>/dev/null")
            .split(separator: "\n").map { $0.split(separator: "\t") }
        try #require(discovers.count >= 2 && discovers.allSatisfy { $0.count == 2 }, "\(discovers)")
        #expect(discovers.allSatisfy { $0[1] == "02:00:00:00:00:63" }, "\(discovers)")
        let gap = try #require(Double(discovers[1][0])) - (try #require(Double(discovers[0][0])))
        #expect((3.0...5.0).contains(gap), "the second DISCOVER \(gap) s after the first")
    }
}
