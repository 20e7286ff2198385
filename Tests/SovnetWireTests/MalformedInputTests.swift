import Testing
@testable import SovnetWire

/// Bad bytes give a typed error naming what is wrong, never a trap.
@Suite struct MalformedInputTests {
    /// The `WireError` that `body` throws, or nil if it succeeds.
    func error(_ body: () throws -> Void) -> WireError? {
        do {
            try body()
            return nil
        } catch let error as WireError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    @Test func truncatedHeaders() {
        #expect(error { _ = try EthernetHeader.parse([UInt8](repeating: 0, count: 13)) }?.kind == .truncated)
        #expect(error { _ = try ARPPacket.parse([0, 1, 8, 0, 6, 4]) }?.kind == .truncated)
        #expect(error { _ = try IPv4Header.parse([0x45, 0, 0, 20]) }?.kind == .truncated)
        #expect(error { _ = try UDPHeader.parse([0, 53, 0, 53]) }?.kind == .truncated)
        #expect(error { _ = try TCPHeader.parse([UInt8](repeating: 0, count: 19)) }?.kind == .truncated)
        #expect(error { _ = try ICMPv4Header.parse([8, 0, 0]) }?.kind == .truncated)
        #expect(error { _ = try DHCPMessage.parse([UInt8](repeating: 0, count: 239)) }?.kind == .truncated)
        #expect(error { _ = try DNSMessage.parse([0, 1, 0, 0]) }?.kind == .truncated)
    }

    @Test func lengthsThatLie() throws {
        let frame = try CaptureVectors.frames("tcp-http.pcap")[3]
        var ip = Array(frame[14...])
        // Total length beyond the bytes.
        ip[2] = 0xFF
        #expect(error { _ = try IPv4Header.parse(ip, verifyChecksum: false) } == WireError(.truncated, .ipv4, "payload"))
        // Header length below 20.
        ip = Array(frame[14...])
        ip[0] = 0x44
        #expect(error { _ = try IPv4Header.parse(ip, verifyChecksum: false) }?.kind == .badLength)
        // A flipped bit fails the header checksum.
        ip = Array(frame[14...])
        ip[8] ^= 1
        #expect(error { _ = try IPv4Header.parse(ip) }?.kind == .badChecksum)
        // TCP data offset past the segment.
        var tcp = Array(frame[34...])
        tcp[12] = 0xF0
        tcp = Array(tcp.prefix(40))
        #expect(error { _ = try TCPHeader.parse(tcp) } == WireError(.truncated, .tcp, "options"))
        // UDP length below its header.
        #expect(error { _ = try UDPHeader.parse([0, 1, 0, 2, 0, 7, 0, 0]) }?.kind == .badLength)
    }

    @Test func tcpOptionsThatLie() {
        func segment(options: [UInt8]) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 20) + options
            bytes[12] = UInt8((bytes.count / 4) << 4)
            return bytes
        }
        #expect(error { _ = try TCPHeader.parse(segment(options: [2, 0, 0, 0])) }?.kind == .badLength)
        #expect(error { _ = try TCPHeader.parse(segment(options: [2, 9, 5, 0xB4])) }?.kind == .badLength)
        #expect(error { _ = try TCPHeader.parse(segment(options: [3, 4, 7, 1])) }?.kind == .badLength)
        #expect(error { _ = try TCPHeader.parse(segment(options: [1, 1, 1, 2])) }?.kind == .truncated)
        // Unknown options are skipped; EOL ends the list.
        #expect(error { _ = try TCPHeader.parse(segment(options: [99, 4, 0, 0, 0, 2, 4, 5])) } == nil)
    }

    @Test func dnsPointerLoopsAndForwardPointers() {
        // A question whose name points at itself.
        let loop: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(error { _ = try DNSMessage.parse(loop) } == WireError(.badValue, .dns, "forward pointer"))
        // A pointer to a later offset.
        let forward: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 14, 1, 0x61, 0, 0, 1, 0, 1]
        #expect(error { _ = try DNSMessage.parse(forward) }?.kind == .badValue)
        // A count of 3 questions with bytes for one.
        let lying: [UInt8] = [0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1, 0x61, 0, 0, 1, 0, 1]
        #expect(error { _ = try DNSMessage.parse(lying) }?.kind == .truncated)
        // Label type 0b01 is reserved.
        let reserved: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 0, 0, 1, 0, 1]
        #expect(error { _ = try DNSMessage.parse(reserved) }?.kind == .unsupported)
    }

    @Test func dnsNameTooLong() {
        var message: [UInt8] = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        for _ in 0..<5 { message += [63] + [UInt8](repeating: 0x61, count: 63) }
        message += [0, 0, 1, 0, 1]
        #expect(error { _ = try DNSMessage.parse(message) } == WireError(.badLength, .dns, "name"))
        let long = DNSName(labels: [[UInt8](repeating: 0x61, count: 64)])
        #expect(error { _ = try DNSMessage(id: 1, questions: [DNSQuestion(name: long, type: .a)]).bytes() }?.kind == .badLength)
    }

    @Test func dhcpOptionsThatLie() throws {
        var message = try DHCPMessage(operation: .request, transactionID: 1,
                                      clientMAC: MACAddress(2, 0, 0, 0, 0, 1)).bytes(minimumLength: 0)
        #expect(message.count == 241)
        message.removeLast()
        // Message type with a length running past the end.
        #expect(error { _ = try DHCPMessage.parse(message + [53, 5, 1]) } == WireError(.truncated, .dhcp, "option data"))
        // Message type of the wrong size and of an unknown value.
        #expect(error { _ = try DHCPMessage.parse(message + [53, 2, 1, 1, 255]) }?.kind == .badLength)
        #expect(error { _ = try DHCPMessage.parse(message + [53, 1, 99, 255]) }?.kind == .badValue)
        // A route with a prefix longer than 32.
        #expect(error { _ = try DHCPMessage.parse(message + [121, 5, 33, 10, 0, 0, 1, 255]) }?.kind == .badValue)
        // Not DHCP: the magic cookie is missing.
        message[236] = 0
        #expect(error { _ = try DHCPMessage.parse(message + [255]) }?.kind == .unsupported)
    }

    @Test func tooManyVLANTags() {
        var frame = [UInt8](repeating: 0, count: 12)
        for _ in 0..<3 { frame += [0x81, 0x00, 0x00, 0x05] }
        frame += [0x08, 0x00]
        #expect(error { _ = try EthernetHeader.parse(frame) }?.kind == .unsupported)
        let tagged = [UInt8](repeating: 0, count: 12) + [0x81, 0x00, 0x00, 0x05, 0x08, 0x06]
        #expect(error { _ = try EthernetHeader.parse(tagged) } == nil)
        #expect((try? EthernetHeader.parse(tagged))?.vlanTCI == 5)
        #expect((try? EthernetHeader.parse(tagged))?.etherType == .arp)
    }
}
