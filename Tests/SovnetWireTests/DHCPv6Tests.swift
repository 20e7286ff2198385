import Testing
@testable import SovnetWire

/// DHCPv6 on the messages of `captures/dhcpv6.pcap` (ISC dhclient against
/// dnsmasq: an address, its release, then stateless configuration), and
/// crafted messages that must be refused with an error, never a trap.
@Suite struct DHCPv6Tests {
    /// The UDP payloads of the capture's DHCPv6 messages, in order.
    static func messages() throws -> [[UInt8]] {
        try CaptureVectors.frames("dhcpv6.pcap").compactMap { frame in
            try frame.withUnsafeBytes { raw -> [UInt8]? in
                let ip = try IPv6View(try EthernetView(raw).payload)
                guard ip.nextHeader == .udp else { return nil }
                let udp = try UDPView(ip.payload, source: .v6(ip.source), destination: .v6(ip.destination))
                return [udp.sourcePort, udp.destinationPort].contains(547) ? Array(udp.payload) : nil
            }
        }
    }

    @Test func recordedMessagesParseToWhatTheToolsSentAndEmitTheSameBytes() throws {
        let recorded = try Self.messages()
        let parsed = try recorded.map { try DHCPv6Message.parse($0) }
        #expect(parsed.map(\.type) == [.solicit, .advertise, .request, .reply, .release, .reply, .informationRequest, .reply])
        for (bytes, message) in zip(recorded, parsed) {
            #expect(message.bytes == bytes, "\(message.type) round trip")
        }
        let solicit = parsed[0]
        #expect(solicit.clientID?.count == 14 && solicit.serverID == nil && solicit.transactionID == 0xAC8AE7)
        #expect(solicit.requestedOptions.contains(DHCPv6Option.dnsServersCode))
        #expect(solicit.identityAssociations.map(\.identifier) == [4_024_700_142])
        let advertise = parsed[1]
        #expect(advertise.clientID == solicit.clientID && advertise.serverID != nil)
        let address = try #require(advertise.identityAssociations.first?.addresses.first)
        #expect(address.address.description == "fd00::11f" && address.validLifetime == 3600)
        #expect(advertise.options.contains(.dnsServers([IPv6Address("fd00::1")!])))
        #expect(advertise.options.contains(.domainList(["example.test"])))
        #expect(advertise.options.contains(.preference(0)) && advertise.options.contains(.status(.success, "success")))
        let information = parsed[6]
        #expect(information.identityAssociations.isEmpty && parsed[7].options.contains(.dnsServers([IPv6Address("fd00::1")!])))
    }

    @Test func craftedMessagesAreRefusedWithTheirReason() {
        func error(_ bytes: [UInt8]) -> WireError? {
            do { _ = try DHCPv6Message.parse(bytes) } catch { return error }
            return nil
        }
        #expect(error([1, 0, 0])?.kind == .truncated)
        #expect(error([12, 0, 0, 0])?.kind == .unsupported, "relay messages have another header")
        #expect(error([1, 0, 0, 1, 0, 1, 0, 8, 0, 3])?.kind == .truncated, "an option longer than the message")
        #expect(error([1, 0, 0, 1, 0, 1, 0, 1, 7])?.kind == .badLength, "a one-byte DUID")
        #expect(error([1, 0, 0, 1, 0, 24, 0, 2, 0xC0, 0])?.kind == .badValue, "a compressed domain name")
        // IA_NA within IA_NA within …: the nesting stops at the bound.
        var nested: [UInt8] = []
        for _ in 0..<6 { nested = [0, 3, 0, UInt8(12 + nested.count)] + [UInt8](repeating: 0, count: 12) + nested }
        #expect(error([3, 0, 0, 1] + nested)?.kind == .unsupported)
    }
}
