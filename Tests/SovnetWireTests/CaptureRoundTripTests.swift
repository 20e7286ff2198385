import Testing
@testable import SovnetWire

/// Every frame of every real capture parses, and emitting the parsed values
/// again gives back the same bytes, checksums included.
@Suite struct CaptureRoundTripTests {
    @Test(arguments: CaptureVectors.files)
    func framesRoundTrip(file: String) throws {
        let frames = try CaptureVectors.frames(file)
        #expect(!frames.isEmpty)
        for (index, frame) in frames.enumerated() {
            let again = try reemit(frame)
            #expect(again == frame, "\(file) frame \(index + 1) differs after parse and emit")
        }
    }

    @Test(arguments: CaptureVectors.files)
    func dhcpMessagesRoundTrip(file: String) throws {
        for payload in try udpPayloads(file, port: 67) {
            let message = try DHCPMessage.parse(payload)
            #expect(try message.bytes(minimumLength: payload.count) == payload)
        }
    }

    /// DNS encoders differ in what they compress (dnsmasq leaves CNAME
    /// targets whole, gvproxy compresses nothing), so the bytes are not
    /// compared: the message must survive, and compressing every suffix must
    /// never make it longer than the original.
    @Test(arguments: CaptureVectors.files)
    func dnsMessagesRoundTrip(file: String) throws {
        for payload in try udpPayloads(file, port: 53) {
            let message = try DNSMessage.parse(payload)
            let again = try message.bytes()
            #expect(try DNSMessage.parse(again) == message)
            #expect(again.count <= payload.count, "DNS message \(message.id) of \(file)")
        }
    }

    /// Rebuilds a frame from parsed header values and the original payloads.
    func reemit(_ frame: [UInt8]) throws -> [UInt8] {
        try frame.withUnsafeBytes { raw throws -> [UInt8] in
            let ethernet = try EthernetView(raw)
            var out: [UInt8] = []
            EthernetHeader(ethernet).emit(into: &out)
            let payload = ethernet.payload
            switch ethernet.etherType {
            case .arp:
                try ARPPacket.parse(payload).emit(into: &out)
                out.append(contentsOf: payload.suffix(from: ARPView.length))
            case .ipv4:
                let ip = try IPv4View(payload)
                try #require(ip.headerLength == 20, "captures carry no IP options")
                IPv4Header(ip).emit(into: &out)
                try reemitTransport(ip, into: &out)
                out.append(contentsOf: payload.suffix(from: ip.totalLength))
            default:
                out.append(contentsOf: payload)
            }
            return out
        }
    }

    func reemitTransport(_ ip: IPv4View, into out: inout [UInt8]) throws {
        let segment = ip.payload
        guard !ip.isFragment else {
            out.append(contentsOf: segment)
            return
        }
        switch ip.protocol {
        case .icmp:
            let icmp = try ICMPv4View(segment)
            ICMPv4Header(icmp).emit(body: icmp.body, into: &out)
        case .udp:
            let udp = try UDPView(segment, source: ip.source, destination: ip.destination)
            try #require(udp.checksum != 0, "captured UDP carries checksums")
            UDPHeader(udp).emit(payload: udp.payload, source: ip.source, destination: ip.destination, into: &out)
        case .tcp:
            let tcp = try TCPView(segment, source: ip.source, destination: ip.destination)
            try TCPHeader(tcp).emit(payload: tcp.payload, source: ip.source, destination: ip.destination, into: &out)
        default:
            out.append(contentsOf: segment)
        }
    }

    func udpPayloads(_ file: String, port: UInt16) throws -> [[UInt8]] {
        try CaptureVectors.frames(file, filter: "udp port \(port)").map { frame in
            try frame.withUnsafeBytes { raw in
                let ip = try IPv4View(try EthernetView(raw).payload)
                return Array(try UDPView(ip.payload).payload)
            }
        }
    }
}
