// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// The one's-complement sum does not depend on byte order (RFC 1071 §2(B)),
// so bytes are summed as native 64-bit words with end-around carry and
// the folded result is converted to network order once at the end. Chunks may
// have any length: when a chunk starts at an odd offset of the whole, its sum
// is byte-swapped before it is added, which is the same as shifting every
// byte into its proper half of the 16-bit word.

/// How a transport checksum is written.
public enum ChecksumMode: Sendable {
    /// Computed over the pseudo-header, header and payload.
    case full
    /// Only the pseudo-header's sum, folded and not complemented, for the
    /// receiver to complete (a virtio-net header's NEEDS_CSUM, Linux's
    /// CHECKSUM_PARTIAL): the payload is never read.
    case partial
}

/// A running Internet checksum over one or more chunks of bytes.
public struct InternetChecksum: Sendable {
    /// One's-complement sum of native-order 64-bit words (end-around carry).
    private var sum: UInt64 = 0
    /// Whether the bytes added so far have an odd length.
    private var odd = false

    public init() {}

    /// Adds the bytes of `chunk`, continuing from where the last chunk ended.
    public mutating func add(_ chunk: UnsafeRawBufferPointer) {
        var chunkSum = Self.nativeSum(chunk)
        if odd {
            chunkSum = UInt64(Self.fold(chunkSum).byteSwapped)
        }
        sum = Self.addWithCarry(sum, chunkSum)
        if chunk.count & 1 == 1 { odd.toggle() }
    }

    /// Adds the bytes of an array.
    public mutating func add(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { add($0) }
    }

    /// Adds a 16-bit value as it would appear on the wire, at an even offset.
    public mutating func add(be16 value: UInt16) {
        sum = Self.addWithCarry(sum, UInt64(value.bigEndian))
    }

    /// Adds a 32-bit value as it would appear on the wire, at an even offset.
    public mutating func add(be32 value: UInt32) {
        add(be16: UInt16(truncatingIfNeeded: value >> 16))
        add(be16: UInt16(truncatingIfNeeded: value))
    }

    /// Adds the IPv4 pseudo-header of TCP and UDP (RFC 793 §3.1, RFC 768).
    public mutating func addPseudoHeader(
        source: IPv4Address, destination: IPv4Address, protocol: IPProtocol, length: Int
    ) {
        add(be32: source.rawValue)
        add(be32: destination.rawValue)
        add(be16: UInt16(`protocol`.rawValue))
        add(be16: UInt16(truncatingIfNeeded: length))
    }

    /// Adds the IPv6 pseudo-header of an upper-layer checksum (RFC 8200 §8.1):
    /// both addresses, the upper-layer length and the next header value.
    public mutating func addPseudoHeader(
        source: IPv6Address, destination: IPv6Address, protocol: IPProtocol, length: Int
    ) {
        for address in [source, destination] {
            add(be32: UInt32(truncatingIfNeeded: address.high >> 32))
            add(be32: UInt32(truncatingIfNeeded: address.high))
            add(be32: UInt32(truncatingIfNeeded: address.low >> 32))
            add(be32: UInt32(truncatingIfNeeded: address.low))
        }
        add(be32: UInt32(truncatingIfNeeded: length))
        add(be32: UInt32(`protocol`.rawValue))
    }

    /// The one's-complement sum folded to 16 bits, in host order.
    public var sum16: UInt16 {
        UInt16(bigEndian: Self.fold(sum))
    }

    /// The checksum to put in a header: the complement of the sum.
    public var value: UInt16 { ~sum16 }

    /// The checksum of `bytes` alone.
    public static func of(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var checksum = InternetChecksum()
        checksum.add(bytes)
        return checksum.value
    }

    /// RFC 1624 eqn. 3: the new checksum after a 16-bit field changes from
    /// `old` to `new`, without summing the packet again.
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        var sum = UInt32(~checksum) + UInt32(~old) + UInt32(new)
        sum = (sum & 0xFFFF) + (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// RFC 1624 update for a 32-bit field, such as an IPv4 address.
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let high = update(checksum, old: UInt16(truncatingIfNeeded: old >> 16),
                          new: UInt16(truncatingIfNeeded: new >> 16))
        return update(high, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new))
    }

    private static func fold(_ value: UInt64) -> UInt16 {
        var sum = (value & 0xFFFF_FFFF) + (value >> 32)
        sum = (sum & 0xFFFF_FFFF) + (sum >> 32)
        sum = (sum & 0xFFFF) + (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16)
        return UInt16(truncatingIfNeeded: sum)
    }

    /// The one's-complement sum of `bytes` as native 64-bit words, with the
    /// carry out of each addition added back in (end-around carry): 2^64 - 1
    /// is a multiple of 2^16 - 1, so the sum folds to the 16-bit one. Two
    /// accumulators over 32 bytes a turn keep the adds from waiting on each other.
    private static func nativeSum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var first: UInt64 = 0
        var second: UInt64 = 0
        var offset = 0
        let count = bytes.count
        while offset + 32 <= count {
            first = addWithCarry(first, bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            second = addWithCarry(second, bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            first = addWithCarry(first, bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
            second = addWithCarry(second, bytes.loadUnaligned(fromByteOffset: offset + 24, as: UInt64.self))
            offset += 32
        }
        while offset + 8 <= count {
            first = addWithCarry(first, bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            offset += 8
        }
        var sum = addWithCarry(first, second)
        while offset + 2 <= count {
            sum = addWithCarry(sum, UInt64(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            offset += 2
        }
        if offset < count {
            // The trailing byte is the high-order byte of a zero-padded word.
            sum = addWithCarry(sum, UInt64(UInt16(littleEndian: UInt16(bytes[offset]))))
        }
        return sum
    }

    @inline(__always)
    private static func addWithCarry(_ sum: UInt64, _ word: UInt64) -> UInt64 {
        let (result, overflow) = sum.addingReportingOverflow(word)
        return result &+ (overflow ? 1 : 0)
    }
}
