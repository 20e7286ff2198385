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

    /// `::`, the unspecified address.
    public static let any = IPv6Address(high: 0, low: 0)
    /// ff02::1 and ff02::2: every node, every router on the link.
    public static let allNodes = IPv6Address(high: 0xFF02 << 48, low: 1)
    public static let allRouters = IPv6Address(high: 0xFF02 << 48, low: 2)

    /// The link-local address a MAC gives by modified EUI-64 (RFC 4291 §2.5.1):
    /// fe80::, then the MAC with its universal/local bit flipped and ff:fe in the middle.
    public init(linkLocalFor mac: MACAddress) {
        let raw = mac.rawValue ^ 0x0200_0000_0000
        let identifier = (raw >> 24) << 40 | 0xFF_FE00_0000 | (raw & 0xFF_FFFF)
        self.init(high: 0xFE80 << 48, low: identifier)
    }

    /// The solicited-node multicast address of this one (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
    public var solicitedNode: IPv6Address {
        IPv6Address(high: 0xFF02 << 48, low: 0x1_FF00_0000 | (low & 0xFF_FFFF))
    }

    public var isMulticast: Bool { high >> 56 == 0xFF }

    /// The Ethernet address IPv6 multicast to this address goes to (RFC 2464 §7): 33:33 and its last 32 bits.
    public var multicastMAC: MACAddress { MACAddress(rawValue: 0x3333_0000_0000 | (low & 0xFFFF_FFFF)) }

    /// The first `length` bits, the rest zero.
    public func masked(prefixLength length: Int) -> IPv6Address {
        func mask(_ word: UInt64, _ bits: Int) -> UInt64 { bits >= 64 ? word : bits <= 0 ? 0 : word & ~(UInt64.max >> bits) }
        return IPv6Address(high: mask(high, length), low: mask(low, length - 64))
    }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { index in
            let word = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: word >> (48 - 16 * UInt64(index % 4)))
        }
    }

    public func append(to out: inout [UInt8]) {
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
