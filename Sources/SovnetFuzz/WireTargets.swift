// The wire parsers under a fuzzer. `frame` takes the layered path the packet
// loops take (Ethernet, then ARP or IPv4, then ICMP, TCP with its options, or
// UDP with DNS and DHCP inside; or IPv6 through its extension headers to
// ICMPv6 with neighbour discovery, TCP or UDP) and the value parsers beside it; `dhcp`,
// `dhcpv6` and `dns` take one message each (`dhcpv6` answered by the server too); `virtio` a virtio-net header and the frame it
// describes, through the software offloads. Whatever parses must also
// survive a round trip: emitted again, it parses to the same value.
import SovnetCore
import SovnetWire

enum WireTargets {
    /// An Ethernet frame, layer by layer.
    static func frame(_ bytes: [UInt8]) -> Set<String> {
        var reached: Set<String> = []
        _ = try? EthernetHeader.parse(bytes)
        _ = try? ARPPacket.parse(bytes)
        bytes.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw) else { return }
            reached.insert("ethernet")
            if let arp = try? ARPPacket.parse(ethernet.payload) {
                var out: [UInt8] = []
                arp.emit(into: &out)
                expect((try? ARPPacket.parse(out)) == arp, "ARP round trip")
                reached.insert("arp")
            }
            ipv6(ethernet.payload, &reached)
            guard let ip = try? IPv4View(ethernet.payload, verifyChecksum: false) else { return }
            _ = ip.isFragment ? ip.fragmentOffset : ip.totalLength
            if (try? IPv4View(ethernet.payload)) != nil {
                reached.insert("ipv4")
                // The value has no options: a header without them must come back whole.
                if ip.headerLength == IPv4View.minimumHeaderLength {
                    var out: [UInt8] = []
                    IPv4Header(ip).emit(into: &out)
                    out += ip.payload
                    expect((try? IPv4Header.parse(out)) == IPv4Header(ip), "IPv4 round trip")
                }
            }
            transport(ip, &reached)
        }
        return reached
    }

    /// An IPv6 packet: its upper layer past the extension headers, ICMPv6
    /// checked against the pseudo-header, and every neighbour discovery field.
    private static func ipv6(_ bytes: UnsafeRawBufferPointer, _ reached: inout Set<String>) {
        guard let ip = try? IPv6View(bytes), let upper = try? ip.upperLayer() else { return }
        reached.insert("ipv6")
        switch upper.protocol {
        case .icmpv6:
            guard let icmp = try? ICMPv6View(upper.payload, source: ip.source, destination: ip.destination) else {
                _ = try? ICMPv6View(upper.payload, source: nil, destination: nil)
                return
            }
            reached.insert("icmpv6")
            _ = try? icmp.echo()
            _ = try? icmp.target()
            _ = try? icmp.routerAdvertisement()
            _ = icmp.advertisementFlags
            if (try? icmp.options()) != nil { reached.insert("ndp") }
        case .tcp:
            if let tcp = try? TCPView(upper.payload) {
                _ = try? tcp.optionList()
                reached.insert("ipv6-tcp")
            }
        case .udp:
            if (try? UDPView(upper.payload)) != nil { reached.insert("ipv6-udp") }
        default:
            break
        }
    }

    private static func transport(_ ip: IPv4View, _ reached: inout Set<String>) {
        if let icmp = try? ICMPv4View(ip.payload) {
            reached.insert("icmp")
            var out: [UInt8] = []
            ICMPv4Header(icmp).emit(body: icmp.body, into: &out)
            expect((try? ICMPv4Header.parse(out)) == ICMPv4Header(icmp), "ICMP round trip")
        }
        if let tcp = try? TCPView(ip.payload, source: ip.source, destination: ip.destination),
           let header = try? TCPHeader(tcp) {
            var out: [UInt8] = []
            header.emit(payload: tcp.payload, source: ip.source, destination: ip.destination, into: &out)
            let again = out.withUnsafeBytes { try? TCPView($0, source: ip.source, destination: ip.destination) }
            expect(again.flatMap { try? TCPHeader($0) } == header, "TCP round trip")
            reached.insert("tcp")
        } else if let tcp = try? TCPView(ip.payload) {
            _ = try? tcp.options()
            _ = try? tcp.optionList()
        }
        if let udp = try? UDPView(ip.payload) {
            reached.insert("udp")
            reached.formUnion(dns(Array(udp.payload)))
            reached.formUnion(dhcp(Array(udp.payload)))
        }
    }

    /// One DHCP message (a UDP payload).
    static func dhcp(_ bytes: [UInt8]) -> Set<String> {
        bytes.withUnsafeBytes { raw in
            guard let view = try? DHCPView(raw) else { return [] }
            _ = view.messageType
            guard let message = try? DHCPMessage(view) else { return [] }
            var out: [UInt8] = []
            guard (try? message.emit(into: &out)) != nil else { return ["dhcp"] }
            expect((try? DHCPMessage.parse(out)) == message, "DHCP round trip")
            return ["dhcp", "dhcp-round-trip"]
        }
    }

    /// One DHCPv6 message: parsed, emitted and parsed to the same value,
    /// then answered by a server with a pool, whose answer must parse too.
    static func dhcpv6(_ bytes: [UInt8]) -> Set<String> {
        guard let message = try? DHCPv6Message.parse(bytes) else { return [] }
        expect((try? DHCPv6Message.parse(message.bytes)) == message, "DHCPv6 round trip")
        var server = DHCPv6Server(configuration: DHCPv6ServerConfiguration(
            gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), prefix: IPv6Address(high: 0xFD00 << 48, low: 0),
            pool: 0x1_0000...0x1_0003, dnsServers: [IPv6Address(high: 0xFD00 << 48, low: 1)], searchDomains: ["example.test"],
            leaseTime: 3600))
        var reached: Set<String> = ["dhcpv6"]
        for port in [PortID(1), PortID(2)] {
            guard let answer = server.answer(message, from: port, now: .now, claim: { _ in true }) else { continue }
            expect((try? DHCPv6Message.parse(answer.bytes)) == answer, "a DHCPv6 answer that does not parse back")
            reached.insert("dhcpv6-\(answer.type)")
        }
        return reached
    }

    /// One DNS message (a UDP payload).
    static func dns(_ bytes: [UInt8]) -> Set<String> {
        bytes.withUnsafeBytes { raw in
            _ = try? DNSView(raw).firstQuestion()
            guard let message = try? DNSMessage.parse(raw) else { return [] }
            var out: [UInt8] = []
            guard (try? message.emit(into: &out)) != nil else { return ["dns"] }
            expect((try? DNSMessage.parse(out)) == message, "DNS round trip")
            return ["dns", "dns-round-trip"]
        }
    }

    /// The TCP segment of an IPv4 or IPv6 (no extension headers) frame;
    /// nil when a header does not parse or, if asked, a checksum is wrong.
    private static func tcpSegment(_ frame: UnsafeRawBufferPointer, verifyingChecksums verify: Bool) -> TCPView? {
        guard let ethernet = try? EthernetView(frame) else { return nil }
        if let ip = try? IPv4View(ethernet.payload, verifyChecksum: verify), ip.protocol == .tcp {
            return verify ? try? TCPView(ip.payload, source: ip.source, destination: ip.destination) : try? TCPView(ip.payload)
        }
        guard let ip = try? IPv6View(ethernet.payload), ip.nextHeader == .tcp else { return nil }
        return verify ? try? TCPView(ip.payload, source: .v6(ip.source), destination: .v6(ip.destination)) : try? TCPView(ip.payload)
    }

    /// A virtio-net header and its frame. Every plain frame the offloads make
    /// carries checksums that verify, and a superframe's segments carry its
    /// payload whole, in order.
    static func virtio(_ bytes: [UInt8]) -> Set<String> {
        bytes.withUnsafeBytes { raw in
            guard let header = try? VirtioNetHeader(raw) else { return [] }
            let frame = UnsafeRawBufferPointer(rebasing: raw[VirtioNetHeader.size...])
            guard let frames = SoftwareOffload.frames(of: frame, header: header) else { return ["virtio-header"] }
            let superframe = header.segmentation == .tcpv4 || header.segmentation == .tcpv6
            expect(!superframe || Int(header.segmentSize) >= SoftwareOffload.minimumSegmentSize,
                   "no superframe is cut into segments under the minimum size")
            guard superframe else {
                expect(frames.count == 1 && frames[0].count == frame.count, "one frame for a plain frame")
                return header.flags & VirtioNetHeader.needsChecksum != 0 ? ["checksum-completed"] : ["plain"]
            }
            var payload: [UInt8] = []
            for segment in frames {
                segment.withUnsafeBytes { segment in
                    let tcp = tcpSegment(segment, verifyingChecksums: true)
                    expect(tcp != nil, "a segment's IP header parses, and its IPv4 and TCP checksums are right")
                    payload += tcp.map { Array($0.payload) } ?? []
                }
            }
            let original = tcpSegment(frame, verifyingChecksums: false).map { Array($0.payload) }
            expect(original == payload, "the segments carry the superframe's payload")
            return ["segmented"]
        }
    }
}
