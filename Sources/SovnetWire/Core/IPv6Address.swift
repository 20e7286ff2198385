/// An IPv6 address, for the places IPv4 code meets one: AAAA records and
/// capture summaries.
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads sixteen octets at `offset`; the caller has checked the length.
    @inlinable
    init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        high = UInt64(bytes.be32(offset)) << 32 | UInt64(bytes.be32(offset + 4))
        low = UInt64(bytes.be32(offset + 8)) << 32 | UInt64(bytes.be32(offset + 12))
    }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { index in
            let word = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(index % 4)))
        }
    }

    func append(to out: inout [UInt8]) {
        out.appendBE32(UInt32(truncatingIfNeeded: high >> 32))
        out.appendBE32(UInt32(truncatingIfNeeded: high))
        out.appendBE32(UInt32(truncatingIfNeeded: low >> 32))
        out.appendBE32(UInt32(truncatingIfNeeded: low))
    }

    /// RFC 5952 text: lower-case hex, the longest run of two or more zero
    /// groups (the first if tied) written as `::`.
    public var description: String {
        let groups = self.groups
        var bestStart = -1, bestLength = 1
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8, groups[end] == 0 { end += 1 }
            if end - index > bestLength {
                bestStart = index
                bestLength = end - index
            }
            index = end
        }
        func text(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestStart >= 0 else { return text(0..<8) }
        return text(0..<bestStart) + "::" + text((bestStart + bestLength)..<8)
    }
}
