// Reassembly of IPv6 fragments from guests (RFC 8200 §4.5), so a large UDP
// datagram or ICMPv6 echo can go out through a host socket whole. Fragments
// are kept per (source, destination, identification) until every byte of
// the fragmentable part has arrived (`FragmentAssembly`); then one packet
// comes out: a plain 40-byte IPv6 header whose next header is the one the
// Fragment header named, and the fragmentable part. The unfragmentable
// extension headers are not kept: what the NAT sends on is the upper
// layer's. Overlaps drop the datagram (RFC 5722); memory is bounded as for
// IPv4: at most `maximumDatagrams` at once, each at most 65,535 bytes,
// forgotten after `timeout` (RFC 8200's 60 s at most).
import SovnetWire

/// Puts fragmented IPv6 packets back together.
public struct IPv6Reassembler {
    private struct Key: Hashable {
        var source: IPv6Address
        var destination: IPv6Address
        var identification: UInt32
    }

    /// What the whole packet's header takes from the first fragment.
    private struct Header {
        var nextHeader: IPProtocol
        var hopLimit: UInt8
    }

    private var table: FragmentTable<Key, Header>

    public init(maximumDatagrams: Int = 64, timeout: Duration = .seconds(30)) {
        table = FragmentTable(maximumDatagrams: maximumDatagrams, timeout: timeout)
    }

    /// Datagrams waiting for fragments.
    public var count: Int { table.count }

    /// Adds one fragment of `ip`, whose Fragment header is `fragment`.
    public mutating func add(_ ip: IPv6View, _ fragment: IPv6View.Fragment, now: ContinuousClock.Instant) -> ReassemblyOutcome {
        let key = Key(source: ip.source, destination: ip.destination, identification: fragment.identification)
        let data = UnsafeRawBufferPointer(rebasing: ip.bytes[fragment.dataOffset...])
        switch table.add(key, data, at: fragment.offset, more: fragment.moreFragments, limit: 65_535 - IPv6FragmentHeader.length,
                         header: Header(nextHeader: fragment.nextHeader, hopLimit: ip.hopLimit), now: now) {
        case .incomplete:
            return .incomplete
        case .dropped(let reason):
            return .dropped(reason)
        case .complete(let header, let payload):
            var packet: [UInt8] = []
            packet.reserveCapacity(IPv6View.headerLength + payload.count)
            IPv6Header(source: ip.source, destination: ip.destination, nextHeader: header.nextHeader, payloadLength: payload.count,
                       hopLimit: header.hopLimit).emit(into: &packet)
            packet.append(contentsOf: payload)
            return .complete(packet)
        }
    }

    /// Forgets datagrams older than the timeout; returns how many.
    public mutating func expire(now: ContinuousClock.Instant) -> Int {
        table.expire(now: now)
    }
}
