// Fragmented datagrams as their fragments arrive, for both IPv4's and
// IPv6's reassembly: one datagram's data (RFC 815's holes, kept as the
// sorted list of ranges received), and the table of datagrams in progress,
// bounded in number and age, each with the header its packet will get. A fragment that overlaps one already received drops the whole
// datagram (RFC 5722), as does one that ends past the datagram's end or
// past the largest packet; a fragment other than the last must carry a
// multiple of 8 bytes.

/// The data of one datagram in reassembly.
struct FragmentAssembly {
    private(set) var payload: [UInt8] = []
    /// Received byte ranges of the payload, kept sorted and disjoint.
    private var ranges: [Range<Int>] = []
    /// The payload's length, known once the last fragment (no "more") arrived.
    private(set) var length: Int?
    let started: ContinuousClock.Instant

    init(started: ContinuousClock.Instant) {
        self.started = started
    }

    /// What adding a fragment came to.
    enum Step: Equatable {
        case incomplete
        /// Every byte from 0 to `length` has arrived.
        case complete
        /// The datagram must be dropped, for this reason.
        case dropped(String)
    }

    /// Adds `data` at `offset`; `more` says fragments follow it. `limit`
    /// is the most payload a datagram may have.
    mutating func add(_ data: UnsafeRawBufferPointer, at offset: Int, more: Bool, limit: Int) -> Step {
        let end = offset + data.count
        guard end <= limit else { return .dropped("fragment ends beyond \(limit) bytes") }
        guard more ? data.count % 8 == 0 && !data.isEmpty : true else {
            return .dropped("a middle fragment's length is not a multiple of 8")
        }
        if let length, end > length || (!more && end != length) { return .dropped("fragment beyond the datagram's end") }
        if !more {
            if ranges.contains(where: { $0.upperBound > end }) { return .dropped("fragment beyond the datagram's end") }
            length = end
        }
        if ranges.contains(where: { $0.overlaps(offset..<end) }) { return .dropped("overlapping fragments") }
        if payload.count < end { payload.append(contentsOf: repeatElement(0, count: end - payload.count)) }
        if let source = data.baseAddress {
            payload.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: source, byteCount: data.count) }
        }
        let index = ranges.firstIndex { $0.lowerBound > offset } ?? ranges.endIndex
        ranges.insert(offset..<end, at: index)
        return isComplete ? .complete : .incomplete
    }

    private var isComplete: Bool {
        guard let length else { return false }
        var next = 0
        for range in ranges {
            guard range.lowerBound == next else { return false }
            next = range.upperBound
        }
        return next == length
    }
}

/// Datagrams in reassembly by `Key`, each with what its whole packet's
/// header is made from (`Header`, taken from the first fragment).
struct FragmentTable<Key: Hashable, Header> {
    private var pending: [Key: (header: Header, assembly: FragmentAssembly)] = [:]
    let maximumDatagrams: Int
    let timeout: Duration

    init(maximumDatagrams: Int, timeout: Duration) {
        self.maximumDatagrams = maximumDatagrams
        self.timeout = timeout
    }

    var count: Int { pending.count }

    /// What adding a fragment came to: on completion, the header and the payload.
    enum Added {
        case incomplete
        case complete(Header, ArraySlice<UInt8>)
        case dropped(String)
    }

    /// Adds a fragment's `data` at `offset` of datagram `key`; `header` is
    /// kept from the first fragment (offset 0), or from whichever came first.
    mutating func add(_ key: Key, _ data: UnsafeRawBufferPointer, at offset: Int, more: Bool, limit: Int,
                      header: @autoclosure () -> Header, now: ContinuousClock.Instant) -> Added {
        var datagram: (header: Header, assembly: FragmentAssembly)
        if let existing = pending[key] {
            datagram = existing
            if offset == 0 { datagram.header = header() }
        } else {
            guard pending.count < maximumDatagrams else { return .dropped("too many datagrams in reassembly") }
            datagram = (header(), FragmentAssembly(started: now))
        }
        switch datagram.assembly.add(data, at: offset, more: more, limit: limit) {
        case .incomplete:
            pending[key] = datagram
            return .incomplete
        case .dropped(let reason):
            pending[key] = nil
            return .dropped(reason)
        case .complete:
            pending[key] = nil
            return .complete(datagram.header, datagram.assembly.payload[0..<(datagram.assembly.length ?? 0)])
        }
    }

    /// Forgets datagrams older than the timeout; returns how many.
    mutating func expire(now: ContinuousClock.Instant) -> Int {
        let before = pending.count
        pending = pending.filter { now - $0.value.assembly.started < timeout }
        return before - pending.count
    }
}

/// What adding a fragment to a reassembler came to.
public enum ReassemblyOutcome: Equatable, Sendable {
    /// More fragments are needed.
    case incomplete
    /// The whole packet: a fresh IP header and the payload.
    case complete([UInt8])
    /// The fragment was refused and its datagram dropped, with the reason.
    case dropped(String)
}
