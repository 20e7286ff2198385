import Foundation
import Testing

/// `sovnet-guest`, the guest's half alone (issue #19): it is sovnet forward
/// and sovnet init without the host's commands, and links no Foundation, no
/// SwiftNIO, no swift-argument-parser and no libpcap (loaded only for a
/// capture filter). A real guest namespace takes its lease through it.
@Suite struct GuestBinaryTests {
    static var binary: String { CommandLineTests.binary.deletingLastPathComponent().appendingPathComponent("sovnet-guest").path }

    @Test func itLinksNoFoundationAndNoSwiftNIO() throws {
        let libraries = try shell("ldd \(Self.binary)")
        #expect(!libraries.contains("libFoundation.so") && !libraries.contains("FoundationInternationalization")
                && !libraries.contains("icu") && !libraries.contains("libpcap"), "\(libraries)")
        let symbols = try shell("nm -C \(Self.binary) | grep -c -E 'NIOCore|NIOPosix|Yams|ArgumentParser|FoundationEssentials|NATCore' || true")
        #expect(symbols.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "host-side symbols: \(symbols)")
        let help = try shell("\(Self.binary) --help")
        #expect(help.contains("forward") && help.contains("init") && !help.contains("proxy"), "\(help)")
        let usage = try shell("\(Self.binary) forward -mtu 5 2>&1; echo status $?")
        #expect(usage.contains("Usage: sovnet-guest forward") && usage.contains("status 64"), "\(usage)")
    }

    @Test(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"))
    func aGuestTakesItsLeaseThroughIt() throws {
        let lab = try ProxyLab("gbin", forwardArguments: "--no-offload")
        let guest = try TestNamespace("svt-gbin2")
        defer { guest.close() }
        let forward = try Spawned("ip netns exec \(guest.name) env -i \(Self.binary) forward -url unix://\(lab.work)/vm.sock "
                                  + "-mac 02:00:00:00:00:61 -stop-if-exist ''", log: lab.work + "/guest-binary.log")
        defer { forward.stop() }
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        #expect(try guest.run("ping -c 2 -i 0.2 -W 2 192.168.127.1 || true").contains(" 0% packet loss"))
    }

    /// With libpcap made unloadable (an empty file bound over it in a
    /// private mount namespace), a capture is still written, and tcpdump
    /// reads it; only a capture filter needs libpcap, and says so.
    @Test(.enabled(if: geteuid() == 0, "needs root for a private mount and network namespace"))
    func capturesNeedNoLibpcapButFiltersDo() throws {
        let work = uniqueTemporaryPath("gbin-pcap")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let library = try shell("ldconfig -p | awk '/libpcap.so.0.8 |libpcap.so.1 / {print $NF; exit}' | xargs realpath")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(!library.isEmpty, "libpcap is installed for the tests")
        func withoutLibpcap(_ arguments: String) throws -> String {
            try shell("unshare -m -n sh -c 'mount --bind /dev/null \(library) && exec timeout -s TERM 2 \(Self.binary) forward "
                      + "-stop-if-exist \"\" -url unix://\(work)/nothing.sock --resolv-conf none \(arguments)' 2>&1; echo status $?")
        }
        let filtered = try withoutLibpcap("--pcap \(work)/filtered.pcap --pcap-filter arp")
        #expect(filtered.contains("cannot load libpcap") && filtered.contains("status 1"), "\(filtered)")
        let plain = try withoutLibpcap("--pcap \(work)/plain.pcap -debug")
        #expect(plain.contains("status 124"), "ran until stopped: \(plain)")
        let read = try shell("tcpdump -n -r \(work)/plain.pcap 2>&1")
        #expect(read.contains("link-type EN10MB"), "\(read)")
    }
}
