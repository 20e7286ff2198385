import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore

/// Reassembly of fragments recorded from a Linux guest (a 2,000-byte ping),
/// in order, out of order and with hostile overlaps; and `GuestFrames`'s own
/// fragmentation undone by the reassembler.
@Suite struct IPv4ReassemblerTests {
    let now = ContinuousClock.now

    /// The recorded fragments, first and last, of the guest's echo request.
    static func recordedFragments() throws -> [[UInt8]] {
        let path = DHCPClientTests.captures.appendingPathComponent("arp-icmp.pcap").path
        return try PcapReader.frames(at: path, filter: "src host 192.168.127.2 and (ip[6:2] & 0x3fff != 0)").map(\.bytes)
    }

    func add(_ reassembler: inout IPv4Reassembler, _ frame: [UInt8], at time: ContinuousClock.Instant? = nil) throws -> ReassemblyOutcome {
        try frame.withUnsafeBytes { bytes in
            let ip = try IPv4View(try EthernetView(bytes).payload)
            return reassembler.add(ip, now: time ?? now)
        }
    }

    func checkEcho(_ outcome: ReassemblyOutcome) throws {
        guard case .complete(let packet) = outcome else {
            Issue.record("not complete: \(outcome)")
            return
        }
        try packet.withUnsafeBytes { bytes in
            let ip = try IPv4View(bytes)
            #expect(!ip.isFragment)
            #expect(ip.source == IPv4Address(192, 168, 127, 2))
            let icmp = try ICMPv4View(ip.payload)
            #expect(icmp.type == .echoRequest, "the ICMP checksum over the whole datagram verifies")
            #expect(ip.payload.count == 1480 + 528, "both fragments' payloads: 8 bytes of ICMP header and 2,000 of data")
        }
    }

    @Test func recordedFragmentsInEitherOrder() throws {
        let fragments = try Self.recordedFragments()
        #expect(fragments.count == 2)
        var inOrder = IPv4Reassembler()
        #expect(try add(&inOrder, fragments[0]) == .incomplete)
        try checkEcho(try add(&inOrder, fragments[1]))
        #expect(inOrder.count == 0)
        var reversed = IPv4Reassembler()
        #expect(try add(&reversed, fragments[1]) == .incomplete)
        try checkEcho(try add(&reversed, fragments[0]))
    }

    @Test func overlapsDropTheDatagram() throws {
        let fragments = try Self.recordedFragments()
        var reassembler = IPv4Reassembler()
        #expect(try add(&reassembler, fragments[0]) == .incomplete)
        guard case .dropped = try add(&reassembler, fragments[0]) else {
            Issue.record("a repeated fragment overlaps itself and must drop the datagram")
            return
        }
        #expect(reassembler.count == 0)
    }

    @Test func incompleteDatagramsExpireAndAreBounded() throws {
        let fragments = try Self.recordedFragments()
        var reassembler = IPv4Reassembler(maximumDatagrams: 1, timeout: .seconds(30))
        #expect(try add(&reassembler, fragments[0]) == .incomplete)
        #expect(reassembler.expire(now: now + .seconds(10)) == 0)
        #expect(reassembler.expire(now: now + .seconds(31)) == 1)
        #expect(reassembler.count == 0)
        #expect(try add(&reassembler, fragments[0]) == .incomplete)
        var other = fragments[0]
        other[14 + 4] ^= 0xFF  // another identification: a second datagram, over the limit
        other.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: 0, toByteOffset: 24, as: UInt16.self)
            let checksum = InternetChecksum.of(UnsafeRawBufferPointer(rebasing: bytes[14..<34]))
            bytes.storeBytes(of: checksum.bigEndian, toByteOffset: 24, as: UInt16.self)
        }
        guard case .dropped = try add(&reassembler, other) else {
            Issue.record("a datagram beyond maximumDatagrams must be refused")
            return
        }
    }

    @Test func guestFramesFragmentsReassembleToTheDatagram() throws {
        let frames = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: 1500)
        let link = GuestLink(port: PortID(1), mac: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE))
        let payload = (0..<9000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        payload.withUnsafeBytes {
            frames.appendUDP(link, source: .v4(IPv4Address(192, 168, 127, 254)), sourcePort: 53,
                             destination: .v4(IPv4Address(192, 168, 127, 2)), destinationPort: 40000, payload: $0)
        }
        #expect(frames.frames.count == 7)
        var reassembler = IPv4Reassembler()
        var outcome = ReassemblyOutcome.incomplete
        try frames.storage.withUnsafeBytes { bytes in
            for frame in frames.frames.reversed() {
                #expect(frame.range.count <= 1514)
                let ip = try IPv4View(try EthernetView(UnsafeRawBufferPointer(rebasing: bytes[frame.range])).payload)
                outcome = reassembler.add(ip, now: now)
            }
        }
        guard case .complete(let packet) = outcome else {
            Issue.record("not complete")
            return
        }
        try packet.withUnsafeBytes { bytes in
            let ip = try IPv4View(bytes)
            let udp = try UDPView(ip.payload, source: ip.source, destination: ip.destination)
            #expect(Array(udp.payload) == payload)
        }
    }
}
