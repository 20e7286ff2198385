// Reassembly of IPv4 fragments from guests (RFC 791 §3.2, RFC 815), so a
// large UDP datagram or ICMP echo can go out through a host socket whole.
// Fragments are kept per (source, destination, protocol, identification)
// until every byte from 0 to the end of the last fragment has arrived
// (`FragmentAssembly`); then one packet with a fresh 20-byte header comes
// out. Overlapping fragments drop the whole datagram (the teardrop defence
// of RFC 5722, applied to IPv4). Memory is bounded: at most `maximumDatagrams` at once, each at most
// 65,535 bytes, and a datagram not completed within `timeout` is forgotten.
import SovnetWire

/// Puts fragmented IPv4 packets back together.
public struct IPv4Reassembler {
    private struct Key: Hashable {
        var source: IPv4Address
        var destination: IPv4Address
        var protocolNumber: UInt8
        var identification: UInt16
    }

    private var table: FragmentTable<Key, IPv4Header>

    public init(maximumDatagrams: Int = 64, timeout: Duration = .seconds(30)) {
        table = FragmentTable(maximumDatagrams: maximumDatagrams, timeout: timeout)
    }

    /// Datagrams waiting for fragments.
    public var count: Int { table.count }

    /// Adds one fragment (a packet with MF set or a non-zero offset).
    public mutating func add(_ ip: IPv4View, now: ContinuousClock.Instant) -> ReassemblyOutcome {
        let key = Key(source: ip.source, destination: ip.destination, protocolNumber: ip.protocol.rawValue,
                      identification: ip.identification)
        switch table.add(key, ip.payload, at: ip.fragmentOffset, more: ip.moreFragments,
                         limit: 65_535 - IPv4View.minimumHeaderLength, header: IPv4Header(ip), now: now) {
        case .incomplete:
            return .incomplete
        case .dropped(let reason):
            return .dropped(reason)
        case .complete(var header, let payload):
            header.payloadLength = payload.count
            header.moreFragments = false
            header.fragmentOffset = 0
            var packet: [UInt8] = []
            packet.reserveCapacity(IPv4View.minimumHeaderLength + payload.count)
            header.emit(into: &packet)
            packet.append(contentsOf: payload)
            return .complete(packet)
        }
    }

    /// Forgets datagrams older than the timeout; returns how many.
    public mutating func expire(now: ContinuousClock.Instant) -> Int {
        table.expire(now: now)
    }
}
