import Testing
@testable import SovnetCore
import SovnetWire

/// How the NAT's frames for guests are handed to the driver: each port's
/// frames together, in the order they were made, with their byte count.
@Suite struct GuestFramesTests {
    let gateway = IPAddress.v4(IPv4Address(192, 168, 127, 1))
    let frames = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: 1500)

    func link(_ port: Int, offload: Bool = false) -> GuestLink {
        GuestLink(port: PortID(port), mac: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, UInt8(port)), offload: offload)
    }

    /// A UDP datagram whose payload is `marker` repeated, to tell frames apart.
    func append(_ link: GuestLink, marker: UInt8, length: Int = 40) {
        Array(repeating: marker, count: length).withUnsafeBytes {
            frames.appendUDP(link, source: gateway, sourcePort: 53, destination: .v4(IPv4Address(192, 168, 127, 2)),
                             destinationPort: 40000, payload: $0)
        }
    }

    struct Visit: Equatable {
        var port: PortID
        var markers: [UInt8]
        var headerLength: Int
        var bytes: Int
    }

    func visits() -> [Visit] {
        var visits: [Visit] = []
        frames.withFramesByPort { port, batch, headerLength, bytes in
            visits.append(Visit(port: port, markers: batch.map { $0[$0.count - 1] }, headerLength: headerLength,
                                bytes: batch.reduce(0) { $0 + $1.count }))
            #expect(bytes == batch.reduce(0) { $0 + $1.count })
            #expect(bytes == frames.bytes(for: port))
        }
        return visits
    }

    @Test func interleavedPortsAreGroupedInTheOrderOfTheirFirstFrame() {
        append(link(3), marker: 1)
        append(link(1, offload: true), marker: 2)
        append(link(3), marker: 3)
        append(link(2), marker: 4)
        append(link(1, offload: true), marker: 5)
        append(link(3), marker: 6, length: 200)
        let seen = visits()
        #expect(seen.map(\.port) == [PortID(3), PortID(1), PortID(2)])
        #expect(seen.map(\.markers) == [[1, 3, 6], [2, 5], [4]])
        #expect(seen.map(\.headerLength) == [0, VirtioNetHeader.size, 0])
        #expect(frames.bytes(for: PortID(4)) == 0)
    }

    @Test func onePortsFramesComeInOneCallAndRemoveAllForgetsThem() {
        for marker in UInt8(1)...5 { append(link(7), marker: marker) }
        #expect(visits().map(\.markers) == [[1, 2, 3, 4, 5]])
        frames.removeAll()
        #expect(frames.isEmpty)
        #expect(frames.bytes(for: PortID(7)) == 0)
        #expect(visits().isEmpty)
        append(link(8), marker: 9)
        #expect(visits().map(\.port) == [PortID(8)])
    }
}
