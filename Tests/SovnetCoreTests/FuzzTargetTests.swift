import Foundation
@testable import SovnetCore
import SovnetWire
import SovnetLink
import Testing
import SovnetFuzz

/// The fuzz targets (SovnetFuzz) without libFuzzer: the seeds made from the
/// recorded gvproxy session reach deep into each target, every input kept in
/// FuzzRegressions (the reproducers of what the fuzzers found, and of what
/// was fixed) runs clean, and a bounded number of mutations of the seeds
/// keeps every invariant. `scripts/fuzz` runs the same targets under
/// libFuzzer with AddressSanitizer.
@Suite struct FuzzTargetTests {
    /// The gvproxy recording, and dhclient's DHCPv6 for the target that wants it.
    static let frames: [[UInt8]] = [VirtualNetworkTests.gvproxyCapture, DHCPv6ServerTests.capture].flatMap {
        (try? PcapReader.frames(at: $0).map(\.bytes)) ?? []
    }
    static let regressions = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("FuzzRegressions")

    /// What each target's seeds must reach: the layers, states and paths that
    /// show the seeds get past the first checks.
    static let expected: [FuzzTarget: Set<String>] = [
        .frame: ["arp", "ipv4", "icmp", "tcp", "udp", "dns-round-trip", "dhcp-round-trip", "ipv6", "icmpv6", "ndp"],
        .dhcp: ["dhcp-round-trip"],
        .dhcpv6: ["dhcpv6", "dhcpv6-advertise", "dhcpv6-reply"],
        .dns: ["dns-round-trip"],
        .virtio: ["plain", "checksum-completed", "segmented"],
        .stream: ["round-trip", "accepted", "qemu", "vm", "stdio", "serial-host", "serial-guest"],
        .dhcpClient: ["SELECTING", "REQUESTING", "BOUND", "applied", "removed", "STOPPED"],
        .network: ["switched", "gateway-reply", "dns-upstream", "nat", "tcp-flow", "tcp-open", "nat-frame", "tcp-closed"],
        .switch: ["flood", "reattached", "gateway-reply", "dns-upstream", "dns-limit", "leases", "spoofed", "mac-limit",
                  "address-taken", "binding-returned", "switched"],
    ]

    @Test(arguments: FuzzTarget.allCases)
    func seedsFromTheRecordingReachDeep(_ target: FuzzTarget) throws {
        try #require(!Self.frames.isEmpty, "the recording \(VirtualNetworkTests.gvproxyCapture) is readable")
        let seeds = target.seeds(from: Self.frames)
        #expect(!seeds.isEmpty)
        let reached = seeds.reduce(into: Set<String>()) { $0.formUnion(target.run($1)) }
        let missing = try #require(Self.expected[target]).subtracting(reached)
        #expect(missing.isEmpty, "\(target.rawValue) never reached \(missing.sorted()); reached \(reached.sorted())")
    }

    @Test(arguments: FuzzTarget.allCases)
    func regressionInputsRunClean(_ target: FuzzTarget) throws {
        let folder = Self.regressions.appendingPathComponent(target.rawValue)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        for file in files.sorted() {
            let bytes = try [UInt8](Data(contentsOf: folder.appendingPathComponent(file)))
            target.run(bytes)
        }
    }

    /// Seeds with random damage (bytes changed, cut, repeated), a bounded
    /// number per target with a fixed seed: the invariants hold for each.
    @Test(arguments: FuzzTarget.allCases)
    func mutatedSeedsKeepEveryInvariant(_ target: FuzzTarget) {
        let seeds = target.seeds(from: Self.frames)
        guard !seeds.isEmpty else { return }
        var random = SplitMix(seed: 0x5EED)
        let rounds = target == .network || target == .dhcpClient ? 300 : 3000
        for round in 0..<rounds {
            var bytes = seeds[round % seeds.count]
            guard !bytes.isEmpty else { continue }
            switch random.next() % 3 {
            case 0:
                for _ in 0...(random.next() % 6) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            case 1:
                bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
            default:
                let start = Int(random.next() % UInt64(bytes.count))
                let piece = bytes[start..<min(bytes.count, start + Int(random.next() % 64) + 1)]
                bytes.insert(contentsOf: piece, at: Int(random.next() % UInt64(bytes.count)))
            }
            target.run(bytes)
        }
    }
}
