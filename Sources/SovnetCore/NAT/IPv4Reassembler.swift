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

    private struct Datagram {
        var header: IPv4Header
        var assembly: FragmentAssembly
    }

    public let maximumDatagrams: Int
    public let timeout: Duration
    private var pending: [Key: Datagram] = [:]

    public init(maximumDatagrams: Int = 64, timeout: Duration = .seconds(30)) {
        self.maximumDatagrams = maximumDatagrams
        self.timeout = timeout
    }

    /// Datagrams waiting for fragments.
    public var count: Int { pending.count }

    /// Adds one fragment (a packet with MF set or a non-zero offset).
    public mutating func add(_ ip: IPv4View, now: ContinuousClock.Instant) -> ReassemblyOutcome {
        let key = Key(source: ip.source, destination: ip.destination, protocolNumber: ip.protocol.rawValue,
                      identification: ip.identification)
        var datagram: Datagram
        if let existing = pending[key] {
            datagram = existing
        } else {
            guard pending.count < maximumDatagrams else { return .dropped("too many datagrams in reassembly") }
            datagram = Datagram(header: IPv4Header(ip), assembly: FragmentAssembly(started: now))
        }
        let step = datagram.assembly.add(ip.payload, at: ip.fragmentOffset, more: ip.moreFragments,
                                         limit: 65_535 - IPv4View.minimumHeaderLength)
        if ip.fragmentOffset == 0 { datagram.header = IPv4Header(ip) }
        switch step {
        case .incomplete:
            pending[key] = datagram
            return .incomplete
        case .dropped(let reason):
            pending[key] = nil
            return .dropped(reason)
        case .complete:
            pending[key] = nil
            let length = datagram.assembly.length ?? 0
            var header = datagram.header
            header.payloadLength = length
            header.moreFragments = false
            header.fragmentOffset = 0
            var packet: [UInt8] = []
            packet.reserveCapacity(IPv4View.minimumHeaderLength + length)
            header.emit(into: &packet)
            packet.append(contentsOf: datagram.assembly.payload[0..<length])
            return .complete(packet)
        }
    }

    /// Forgets datagrams older than the timeout; returns how many.
    public mutating func expire(now: ContinuousClock.Instant) -> Int {
        let before = pending.count
        pending = pending.filter { now - $0.value.assembly.started < timeout }
        return before - pending.count
    }
}
