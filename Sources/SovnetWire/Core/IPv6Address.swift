/// An IPv6 address (RFC 4291), held as two host-order 64-bit halves.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
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

    /// Parses RFC 4291 §2.2 text: eight hex groups, one `::` for a run of
    /// zero groups, and an IPv4 dotted quad in place of the last two
    /// (`::ffff:192.0.2.1`); nil if malformed. A zone (`%eth0`) is not an address's part.
    public init?(_ text: some StringProtocol) {
        let whole = String(text)
        // The halves around the one "::" allowed (":::" holds two).
        let bytes = Array(whole.utf8)
        let colon = UInt8(ascii: ":")
        let doubleColons = bytes.indices.dropLast().filter { bytes[$0] == colon && bytes[$0 + 1] == colon }
        guard doubleColons.count <= 1 else { return nil }
        let halves = doubleColons.first.map {
            [String(decoding: bytes[..<$0], as: UTF8.self), String(decoding: bytes[($0 + 2)...], as: UTF8.self)]
        } ?? [whole]
        func groups(_ part: String, allowsIPv4: Bool) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for (index, piece) in pieces.enumerated() {
                if allowsIPv4, index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = IPv4Address(piece) else { return nil }
                    result += [UInt16(truncatingIfNeeded: v4.rawValue >> 16), UInt16(truncatingIfNeeded: v4.rawValue)]
                } else {
                    guard (1...4).contains(piece.count), piece.allSatisfy { $0.isHexDigit },
                          let group = UInt16(piece, radix: 16) else { return nil }
                    result.append(group)
                }
            }
            return result
        }
        guard let head = groups(halves[0], allowsIPv4: halves.count == 1) else { return nil }
        let tail = halves.count == 2 ? groups(halves[1], allowsIPv4: true) : []
        guard let tail else { return nil }
        let all: [UInt16]
        if halves.count == 2 {
            guard head.count + tail.count <= 7 else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard head.count == 8 else { return nil }
            all = head
        }
        let word = { (range: Range<Int>) in all[range].reduce(UInt64(0)) { $0 << 16 | UInt64($1) } }
        self.init(high: word(0..<4), low: word(4..<8))
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
    /// `::1`.
    public static let loopback = IPv6Address(high: 0, low: 1)
    public var isLoopback: Bool { self == .loopback }
    /// fe80::/10, valid only on one link.
    public var isLinkLocal: Bool { high >> 54 == 0xFE80 >> 6 }
    /// ::ffff:0:0/96, an IPv4 address in IPv6 clothing (RFC 4291 §2.5.5.2).
    public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xFFFF }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }

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
