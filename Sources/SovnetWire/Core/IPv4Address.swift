/// An IPv4 address, held as a host-order 32-bit value.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Reads four octets at `offset`; the caller has checked the length.
    @inlinable
    init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        rawValue = bytes.be32(offset)
    }

    /// Parses dotted-quad notation (`192.168.127.1`); nil if malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy { $0.isASCIIDigit },
                  let octet = UInt8(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        rawValue = value
    }

    public static let any = IPv4Address(rawValue: 0)
    public static let broadcast = IPv4Address(rawValue: 0xFFFF_FFFF)

    public var octets: [UInt8] {
        [UInt8(truncatingIfNeeded: rawValue >> 24), UInt8(truncatingIfNeeded: rawValue >> 16),
         UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue)]
    }

    public var isLoopback: Bool { rawValue >> 24 == 127 }
    public var isLinkLocal: Bool { rawValue >> 16 == 0xA9FE }
    public var isMulticast: Bool { rawValue >> 28 == 0xE }

    /// The address with only the first `prefixLength` bits kept.
    public func masked(prefixLength: Int) -> IPv4Address {
        IPv4Address(rawValue: rawValue & IPv4Address.mask(prefixLength: prefixLength).rawValue)
    }

    /// The netmask of a prefix length (clamped to 0...32).
    public static func mask(prefixLength: Int) -> IPv4Address {
        let length = min(max(prefixLength, 0), 32)
        return IPv4Address(rawValue: length == 0 ? 0 : UInt32.max << (32 - UInt32(length)))
    }

    /// The prefix length of a contiguous netmask, or nil when it is not one.
    public var prefixLength: Int? {
        let ones = rawValue.leadingZeroBitCount == 0 ? (~rawValue).leadingZeroBitCount : 0
        return IPv4Address.mask(prefixLength: ones) == self ? ones : nil
    }

    @inlinable
    func append(to out: inout [UInt8]) {
        out.appendBE32(rawValue)
    }

    public var description: String {
        octets.map(String.init).joined(separator: ".")
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.rawValue < b.rawValue }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
