// Reassembly of IPv4 fragments from guests (RFC 791 §3.2, RFC 815), so a
// large UDP datagram or ICMP echo can go out through a host socket whole.
// Fragments are kept per (source, destination, protocol, identification)
// until every byte from 0 to the end of the last fragment has arrived; then
// one packet with a fresh 20-byte header comes out. Overlapping fragments
// drop the whole datagram (the teardrop defence of RFC 5722, applied to
// IPv4). Memory is bounded: at most `maximumDatagrams` at once, each at most
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
        var payload: [UInt8]
        /// Received byte ranges of the payload, kept sorted and disjoint.
        var ranges: [Range<Int>] = []
        /// The payload's length, known once the fragment without MF arrived.
        var length: Int?
        let started: ContinuousClock.Instant
    }

    /// What adding a fragment came to.
    public enum Outcome: Equatable {
        /// More fragments are needed.
        case incomplete
        /// The whole packet: a 20-byte header and the payload.
        case complete([UInt8])
        /// The fragment was refused and its datagram dropped, with the reason.
        case dropped(String)
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
    public mutating func add(_ ip: IPv4View, now: ContinuousClock.Instant) -> Outcome {
        let key = Key(source: ip.source, destination: ip.destination, protocolNumber: ip.protocol.rawValue,
                      identification: ip.identification)
        let offset = ip.fragmentOffset
        let data = ip.payload
        let end = offset + data.count
        guard end <= 65_535 - IPv4View.minimumHeaderLength else {
            pending[key] = nil
            return .dropped("fragment ends beyond 65,535 bytes")
        }
        guard ip.moreFragments ? data.count % 8 == 0 && !data.isEmpty : true else {
            pending[key] = nil
            return .dropped("a middle fragment's length is not a multiple of 8")
        }
        var datagram: Datagram
        if let existing = pending[key] {
            datagram = existing
        } else {
            guard pending.count < maximumDatagrams else { return .dropped("too many datagrams in reassembly") }
            datagram = Datagram(header: IPv4Header(ip), payload: [], started: now)
        }
        if let length = datagram.length, end > length || (!ip.moreFragments && end != length) {
            pending[key] = nil
            return .dropped("fragment beyond the datagram's end")
        }
        if !ip.moreFragments {
            if datagram.ranges.contains(where: { $0.upperBound > end }) {
                pending[key] = nil
                return .dropped("fragment beyond the datagram's end")
            }
            datagram.length = end
        }
        if datagram.ranges.contains(where: { $0.overlaps(offset..<end) }) {
            pending[key] = nil
            return .dropped("overlapping fragments")
        }
        if offset == 0 { datagram.header = IPv4Header(ip) }
        if datagram.payload.count < end { datagram.payload.append(contentsOf: repeatElement(0, count: end - datagram.payload.count)) }
        if let source = data.baseAddress {
            datagram.payload.withUnsafeMutableBytes {
                $0.baseAddress!.advanced(by: offset).copyMemory(from: source, byteCount: data.count)
            }
        }
        let index = datagram.ranges.firstIndex { $0.lowerBound > offset } ?? datagram.ranges.endIndex
        datagram.ranges.insert(offset..<end, at: index)
        if let length = datagram.length, Self.covers(datagram.ranges, length) {
            pending[key] = nil
            var header = datagram.header
            header.payloadLength = length
            header.moreFragments = false
            header.fragmentOffset = 0
            var packet: [UInt8] = []
            packet.reserveCapacity(IPv4View.minimumHeaderLength + length)
            header.emit(into: &packet)
            packet.append(contentsOf: datagram.payload[0..<length])
            return .complete(packet)
        }
        pending[key] = datagram
        return .incomplete
    }

    private static func covers(_ ranges: [Range<Int>], _ length: Int) -> Bool {
        var next = 0
        for range in ranges {
            guard range.lowerBound == next else { return false }
            next = range.upperBound
        }
        return next == length
    }

    /// Forgets datagrams older than the timeout; returns how many.
    public mutating func expire(now: ContinuousClock.Instant) -> Int {
        let before = pending.count
        pending = pending.filter { now - $0.value.started < timeout }
        return before - pending.count
    }
}
