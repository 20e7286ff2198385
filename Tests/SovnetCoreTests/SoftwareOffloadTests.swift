import SovnetWire
import Testing
@testable import SovnetCore

/// What the switch does for a plain guest with an offloading guest's frames:
/// checksums left to complete are completed, and a TCP superframe becomes
/// the segments it stands for, each a valid packet of its own.
@Suite struct SoftwareOffloadTests {
    let source = IPv4Address(192, 168, 127, 2)
    let destination = IPv4Address(192, 168, 127, 3)

    /// A TCP/IPv4 frame as an offloading kernel hands it over: the TCP
    /// checksum holds the pseudo-header's sum only.
    func superframe(payload: [UInt8], flags: TCPFlags) -> [UInt8] {
        var frame: [UInt8] = []
        EthernetHeader(destination: MACAddress(2, 0, 0, 0, 0, 3), source: MACAddress(2, 0, 0, 0, 0, 2), etherType: .ipv4).emit(into: &frame)
        let header = TCPHeader(sourcePort: 40_000, destinationPort: 7200, sequenceNumber: 0xFFFF_F000,
                               acknowledgmentNumber: 99, flags: flags, window: 1024,
                               options: TCPOptions(timestamps: (value: 7, echoReply: 8)))
        IPv4Header(source: source, destination: destination, protocol: .tcp, payloadLength: header.bufferLength + payload.count,
                   identification: 500).emit(into: &frame)
        payload.withUnsafeBytes { header.emit(payload: $0, source: source, destination: destination, checksum: .partial, into: &frame) }
        return frame
    }

    @Test func aSuperframeBecomesValidSegmentsInOrder() throws {
        let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let frame = superframe(payload: payload, flags: [.ack, .psh, .fin])
        let header = VirtioNetHeader(headerLength: 14 + 20 + 32, transportStart: 34, segmentSize: 1448)
        let segments = try #require(frame.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: header) })
        #expect(segments.count == 7)
        var joined: [UInt8] = []
        var expected: UInt32 = 0xFFFF_F000
        for (index, segment) in segments.enumerated() {
            try segment.withUnsafeBytes { raw in
                let ip = try IPv4View(try EthernetView(raw).payload)
                #expect(ip.identification == 500 &+ UInt16(index))
                let tcp = try TCPView(ip.payload, source: ip.source, destination: ip.destination)
                #expect(tcp.sequenceNumber == expected, "sequence numbers wrap and follow on")
                #expect(tcp.payload.count == (index < 6 ? 1448 : 10_000 - 6 * 1448))
                let last = index == segments.count - 1
                #expect(tcp.flags == (last ? [.ack, .psh, .fin] : [.ack]))
                #expect(try tcp.options().timestamps?.value == 7)
                joined += tcp.payload
                expected = expected &+ UInt32(tcp.payload.count)
            }
        }
        #expect(joined == payload)
    }

    @Test func aTCPv6SuperframeBecomesValidSegmentsAndAMismatchedOneNothing() throws {
        let (source, destination) = (IPv6Address("fd00::2")!, IPv6Address("fd00::3")!)
        let payload = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var frame: [UInt8] = []
        EthernetHeader(destination: MACAddress(2, 0, 0, 0, 0, 3), source: MACAddress(2, 0, 0, 0, 0, 2), etherType: .ipv6).emit(into: &frame)
        let tcp = TCPHeader(sourcePort: 40_000, destinationPort: 7200, sequenceNumber: 1, acknowledgmentNumber: 99, flags: [.ack, .psh],
                            window: 1024)
        IPv6Header(source: source, destination: destination, nextHeader: .tcp, payloadLength: 20 + payload.count).emit(into: &frame)
        payload.withUnsafeBytes { tcp.emit(payload: $0, source: .v6(source), destination: .v6(destination), checksum: .partial, into: &frame) }
        let header = VirtioNetHeader(headerLength: 14 + 40 + 20, transportStart: 54, segmentSize: 1428, ipv6: true)
        let segments = try #require(frame.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: header) })
        #expect(segments.count == 4)
        var joined: [UInt8] = []
        for segment in segments {
            try segment.withUnsafeBytes { raw in
                let ip = try IPv6View(try EthernetView(raw).payload)
                #expect(ip.payloadLength == ip.payload.count)
                joined += try TCPView(ip.payload, source: .v6(ip.source), destination: .v6(ip.destination)).payload
            }
        }
        #expect(joined == payload)
        // A TCPv4 superframe's header on an IPv6 frame, and the other way round, is no superframe at all.
        let mismatched = VirtioNetHeader(headerLength: 14 + 40 + 20, transportStart: 54, segmentSize: 1428, ipv6: false)
        #expect(frame.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: mismatched) } == nil)
        let v4 = superframe(payload: payload, flags: [.ack])
        #expect(v4.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: header) } == nil)
    }

    @Test func checksumsLeftToCompleteAreCompleted() throws {
        var frame = superframe(payload: Array(repeating: 0x5A, count: 333), flags: [.ack])
        let header = VirtioNetHeader(headerLength: 66, transportStart: 34, segmentSize: nil)
        try frame.withUnsafeBytes { raw in
            let ip = try IPv4View(try EthernetView(raw).payload)
            #expect(throws: WireError.self, "partial until completed") { _ = try TCPView(ip.payload, source: ip.source, destination: ip.destination) }
        }
        #expect(frame.withUnsafeMutableBytes { SoftwareOffload.completeChecksum($0, header: header) })
        try frame.withUnsafeBytes { raw in
            let ip = try IPv4View(try EthernetView(raw).payload)
            _ = try TCPView(ip.payload, source: ip.source, destination: ip.destination)
        }
        let plainCopy = try #require(frame.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: VirtioNetHeader()) })
        #expect(plainCopy == [frame])
    }

    @Test func badHeadersAndFramesAreRefused() {
        var short = [UInt8](repeating: 0, count: 40)
        var header = VirtioNetHeader()
        header.flags = VirtioNetHeader.needsChecksum
        header.checksumStart = 34
        header.checksumOffset = 16
        #expect(!short.withUnsafeMutableBytes { SoftwareOffload.completeChecksum($0, header: header) }, "field beyond the frame")
        header.gsoType = VirtioNetHeader.SegmentationType.tcpv4.rawValue
        header.segmentSize = 1448
        #expect(short.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: header) } == nil, "not a TCP packet")
        header.gsoType = VirtioNetHeader.SegmentationType.udp.rawValue
        #expect(short.withUnsafeBytes { SoftwareOffload.frames(of: $0, header: header) } == nil, "UDP segmentation is not done")
    }

    @Test func framesChangeOnlyBetweenUnlikePorts() {
        let superframe = VirtioNetHeader(headerLength: 66, transportStart: 34, segmentSize: 1448)
        let checksumOnly = VirtioNetHeader(headerLength: 66, transportStart: 34, segmentSize: nil)
        #expect(SoftwareOffload.conversion(from: nil, toOffloading: false) == .unchanged)
        #expect(SoftwareOffload.conversion(from: superframe, toOffloading: true) == .unchanged)
        #expect(SoftwareOffload.conversion(from: nil, toOffloading: true) == .addPlainHeader)
        #expect(SoftwareOffload.conversion(from: VirtioNetHeader(), toOffloading: false) == .removeHeader)
        #expect(SoftwareOffload.conversion(from: checksumOnly, toOffloading: false) == .finishInSoftware)
        #expect(SoftwareOffload.conversion(from: superframe, toOffloading: false) == .finishInSoftware)
    }

    @Test func virtioNetHeadersRoundTrip() throws {
        let header = VirtioNetHeader(headerLength: 66, transportStart: 34, segmentSize: 1448)
        var bytes: [UInt8] = []
        header.emit(into: &bytes)
        #expect(bytes == [1, 1, 66, 0, 0xA8, 5, 34, 0, 16, 0])
        #expect(try bytes.withUnsafeBytes { try VirtioNetHeader($0) } == header)
        #expect(throws: WireError.self) { _ = try [UInt8](repeating: 0, count: 9).withUnsafeBytes { try VirtioNetHeader($0) } }
        #expect(VirtioNetHeader().isPlain && !header.isPlain)
    }
}
