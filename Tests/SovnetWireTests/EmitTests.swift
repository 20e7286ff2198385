import Testing
@testable import SovnetWire

/// Values built in code survive emit and parse.
@Suite struct EmitTests {
    @Test func dhcpLongOptionIsSplitAndJoined() throws {
        var message = DHCPMessage(operation: .reply, transactionID: 0xABCD, clientMAC: MACAddress(2, 0, 0, 0, 0, 9))
        message.options.messageType = .ack
        message.options.domainSearch = (0..<40).map { DNSName("zone\($0).example.test") }
        message.options.classlessStaticRoutes = [
            DHCPRoute(destination: IPv4Address(0, 0, 0, 0), prefixLength: 0, router: IPv4Address(10, 0, 0, 1)),
            DHCPRoute(destination: IPv4Address(172, 16, 5, 0), prefixLength: 20, router: IPv4Address(10, 0, 0, 2)),
        ]
        let bytes = try message.bytes()
        #expect(try #require(message.options[.domainSearch]).count > 255)
        let parsed = try DHCPMessage.parse(bytes)
        #expect(parsed == message)
        #expect(parsed.options.domainSearch.count == 40)
        #expect(parsed.options.classlessStaticRoutes[1].destination == IPv4Address(172, 16, 0, 0))
        // Compression inside option 119: after the first name, each is its
        // first label and a 2-byte pointer (20 + 9 × 8 + 30 × 9 bytes).
        #expect(try #require(message.options[.domainSearch]).count == 362)
    }

    /// Compression points only at a suffix spelt the same: a name that
    /// differs in case is written whole, so every name keeps its spelling
    /// (RFC 4343; the fuzzers' round trip found the case being lost).
    @Test func dnsCompressionKeepsEachNamesCase() throws {
        let message = DNSMessage(
            id: 7, flags: DNSFlags(rawValue: 0x8180),
            questions: [DNSQuestion(name: "Host.Example.TEST", type: .a)],
            answers: [DNSResourceRecord(name: "host.example.test", type: .a, ttl: 60, data: .a(IPv4Address(10, 0, 0, 1))),
                      DNSResourceRecord(name: "Host.Example.TEST", type: .a, ttl: 60, data: .a(IPv4Address(10, 0, 0, 2)))])
        let bytes = try message.bytes()
        // Header 12, question name 19 + 4; answers: the other spelling whole
        // (19), then a 2-byte pointer to the question's; each 10 + 4 more.
        #expect(bytes.count == 12 + 19 + 4 + (19 + 10 + 4) + (2 + 10 + 4))
        let parsed = try DNSMessage.parse(bytes)
        #expect(parsed == message)
        #expect(parsed.answers.map(\.name.description) == ["host.example.test.", "Host.Example.TEST."])
    }

    @Test func tcpOptionsLayoutIsFourByteAligned() throws {
        var options = TCPOptions(maximumSegmentSize: 1400, windowScale: 7, sackPermitted: true)
        options.sackBlocks.append(left: 100, right: 200)
        let header = TCPHeader(sourcePort: 1, destinationPort: 2, sequenceNumber: 3, flags: [.ack], window: 4, options: options)
        var out: [UInt8] = []
        header.emit(payload: [1, 2, 3], source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2), into: &out)
        #expect(header.bufferLength % 4 == 0)
        #expect(out.count == header.bufferLength + 3)
        let parsed = try out.withUnsafeBytes { raw in
            try TCPHeader(try TCPView(raw, source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2)))
        }
        #expect(parsed == header)
    }

    @Test func addressText() {
        #expect(IPv6Address(high: 0xFD00_0000_0000_0000, low: 0x10).description == "fd00::10")
        #expect(IPv6Address(high: 0x2001_0DB8_0000_0001, low: 0x0000_0000_0000_0001).description == "2001:db8:0:1::1")
        #expect(IPv4Address("192.168.127.254")?.description == "192.168.127.254")
        #expect(IPv4Address("256.1.1.1") == nil)
        #expect(IPv4Address(255, 255, 240, 0).prefixLength == 20)
        #expect(IPv4Address(255, 0, 255, 0).prefixLength == nil)
        #expect(MACAddress("5A:94:EF:E4:0C:DD")?.description == "5a:94:ef:e4:0c:dd")
        #expect(MACAddress("5a:94:ef:e4:0c") == nil)
        #expect(DNSName(labels: [Array("a.b".utf8), [0x07]]).description == "a\\.b.\\007.")
    }
}
