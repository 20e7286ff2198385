import Testing
@testable import SovnetWire

/// IPv6 and ICMPv6 on the frames of `captures/ipv6.pcap` (Linux bringing
/// IPv6 up, neighbour discovery, ping, TCP and UDP), and crafted packets
/// that must be refused with an error, never a trap.
@Suite struct IPv6Tests {
    static func packets() throws -> [[UInt8]] {
        try CaptureVectors.frames("ipv6.pcap").map { Array($0.dropFirst(EthernetView.headerLength)) }
    }

    @Test func everyRecordedPacketReachesItsUpperLayerWithItsChecksumRight() throws {
        var seen: Set<UInt8> = []
        for packet in try Self.packets() {
            try packet.withUnsafeBytes { raw in
                let ip = try IPv6View(raw)
                let upper = try ip.upperLayer()
                seen.insert(upper.protocol.rawValue)
                var sum = InternetChecksum()
                sum.addPseudoHeader(source: ip.source, destination: ip.destination, protocol: upper.protocol,
                                    length: upper.payload.count)
                sum.add(upper.payload)
                #expect(sum.value == 0, "the pseudo-header and payload of a \(upper.protocol) packet sum to zero")
                if upper.protocol == .icmpv6 {
                    _ = try ICMPv6View(upper.payload, source: ip.source, destination: ip.destination)
                }
            }
        }
        #expect(seen == [IPProtocol.icmpv6.rawValue, IPProtocol.tcp.rawValue, IPProtocol.udp.rawValue])
    }

    @Test func neighbourDiscoveryFieldsAreThoseTheKernelSent() throws {
        var targets: [String] = []
        var sourceLinkLayer: [MACAddress] = []
        var reportsBehindHopByHop = 0
        for packet in try Self.packets() {
            try packet.withUnsafeBytes { raw in
                let ip = try IPv6View(raw)
                let upper = try ip.upperLayer()
                guard upper.protocol == .icmpv6 else { return }
                let icmp = try ICMPv6View(upper.payload, source: ip.source, destination: ip.destination)
                switch icmp.type {
                case .neighborSolicitation, .neighborAdvertisement:
                    targets.append("\(icmp.type == .neighborSolicitation ? "ns" : "na") \(try icmp.target())")
                    for case .sourceLinkLayer(let mac) in try icmp.options() { sourceLinkLayer.append(mac) }
                case .multicastListenerReportV2:
                    #expect(ip.nextHeader.rawValue == 0 && ip.hopLimit == 1, "MLD comes behind a hop-by-hop header")
                    reportsBehindHopByHop += 1
                case .echoRequest, .echoReply:
                    #expect(try icmp.echo().identifier == 26452)
                default:
                    break
                }
            }
        }
        #expect(targets.contains("ns fd00::1") && targets.contains("na fd00::1"))
        #expect(targets.contains("ns fe80::5894:efff:fee4:cee"), "duplicate address detection of the link-local address")
        #expect(sourceLinkLayer.contains(MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)))
        #expect(reportsBehindHopByHop > 0)
    }

    /// A header of 40 bytes, `next` as its next header, and `payload` after it.
    static func packet(next: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF), next, 64]
        bytes += [UInt8](repeating: 0, count: 15) + [1] + [UInt8](repeating: 0, count: 15) + [2]
        return bytes + payload
    }

    @Test func craftedPacketsAreRefusedWithTheirReason() throws {
        func error(_ bytes: [UInt8]) -> WireError? {
            bytes.withUnsafeBytes { raw -> WireError? in
                do throws(WireError) {
                    _ = try IPv6View(raw).upperLayer()
                    return nil
                } catch {
                    return error
                }
            }
        }
        #expect(error(Array(Self.packet(next: 59, []).prefix(39)))?.kind == .truncated)
        #expect(error([0x40] + Self.packet(next: 59, []).dropFirst())?.kind == .badValue, "version 4 in an IPv6 header")
        // Nine hop-by-hop headers in a row: past the walk's bound.
        let chain: [UInt8] = (0..<9).flatMap { _ -> [UInt8] in [0, 0, 1, 4, 0, 0, 0, 0] }
        #expect(error(Self.packet(next: 0, chain))?.kind == .unsupported)
        // A destination options header whose length runs past the packet.
        #expect(error(Self.packet(next: 60, [59, 4, 1, 4, 0, 0, 0, 0]))?.kind == .badLength)
        // A later fragment: the walk stops there and says which.
        let later = try Self.packet(next: 44, [17, 0, 0x05, 0xA8, 0, 0, 0, 7, 1, 2, 3]).withUnsafeBytes { raw in
            try IPv6View(raw).upperLayer()
        }
        #expect(later.protocol == .udp && later.fragment == IPv6View.Fragment(offset: 1448, moreFragments: false, identification: 7,
                                                                                    nextHeader: .udp, dataOffset: 48))

        var solicitation: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16) + [1, 0, 0, 0, 0, 0, 0, 0]
        try solicitation.withUnsafeBytes { raw in
            let icmp = try ICMPv6View(raw, source: nil, destination: nil)
            #expect(throws: WireError(.badLength, .icmpv6, "option length")) { try icmp.options() }
        }
        solicitation[25] = 9
        try solicitation.withUnsafeBytes { raw in
            let icmp = try ICMPv6View(raw, source: nil, destination: nil)
            #expect(throws: WireError(.truncated, .icmpv6, "option")) { try icmp.options() }
        }
    }

    @Test func addressesReadAndWriteAsRFC4291AndRFC5952Say() {
        let cases: [(String, String)] = [
            ("::", "::"), ("::1", "::1"), ("fd00::254", "fd00::254"), ("FD00:0:0:0:0:0:0:1", "fd00::1"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("fe80::5894:efff:fee4:cee", "fe80::5894:efff:fee4:cee"),
            ("::ffff:192.0.2.1", "::ffff:c000:201"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::", "1::"),
        ]
        for (text, written) in cases {
            #expect(IPv6Address(text)?.description == written, "\(text)")
        }
        for bad in ["", ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "::1.2.3", "1:2:3:4:5:6:7::8",
                    "fe80::1%eth0", "::ffff:1.2.3.4:5"] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
        #expect(IPv6Address("::ffff:127.0.0.1")!.isIPv4Mapped && IPv6Address("fe80::1")!.isLinkLocal && IPv6Address.loopback.isLoopback)
        #expect(IPAddress("192.0.2.1") == .v4(IPv4Address(192, 0, 2, 1)) && IPAddress("::1") == .v6(.loopback))
        #expect(IPAddress.v6(.loopback).with(port: 80) == "[::1]:80" && IPAddress.v4(.any).with(port: 80) == "0.0.0.0:80")
    }
}
