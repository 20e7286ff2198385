/// A 48-bit IEEE 802 MAC address.
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The six octets in transmission order, packed into the low 48 bits.
    public let rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        self.init(rawValue: UInt64(b0) << 40 | UInt64(b1) << 32 | UInt64(b2) << 24
            | UInt64(b3) << 16 | UInt64(b4) << 8 | UInt64(b5))
    }

    /// Reads six octets at `offset`; the caller has checked the length.
    @inlinable
    init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        let high = UInt64(bytes.be16(offset))
        let low = UInt64(bytes.be32(offset + 2))
        self.init(rawValue: high << 32 | low)
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators); nil if malformed.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let groups = parts.count == 6 ? parts : text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 6 else { return nil }
        var value: UInt64 = 0
        for group in groups {
            guard group.count == 2, let octet = UInt8(group, radix: 16) else { return nil }
            value = value << 8 | UInt64(octet)
        }
        self.init(rawValue: value)
    }

    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    public static let zero = MACAddress(rawValue: 0)

    /// The I/G bit: set for group (multicast and broadcast) addresses.
    public var isMulticast: Bool { rawValue & (1 << 40) != 0 }
    public var isBroadcast: Bool { self == .broadcast }
    public var isUnicast: Bool { !isMulticast }

    /// The six octets in transmission order.
    public var octets: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * UInt64($0))) }
    }

    @inlinable
    func append(to out: inout [UInt8]) {
        out.appendBE16(UInt16(truncatingIfNeeded: rawValue >> 32))
        out.appendBE32(UInt32(truncatingIfNeeded: rawValue))
    }

    public var description: String {
        octets.map { hex2($0) }.joined(separator: ":")
    }

    public static func < (a: MACAddress, b: MACAddress) -> Bool { a.rawValue < b.rawValue }
}

func hex2(_ byte: UInt8) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
}
