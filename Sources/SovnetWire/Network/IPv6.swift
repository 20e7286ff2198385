// IPv6 packets (RFC 8200): the fixed 40-byte header, and the chain of
// extension headers walked to the upper-layer header. Hop-by-Hop Options
// (0), Routing (43), Destination Options (60) and Authentication (51, RFC
// 4302) are skipped by their lengths; a Fragment header (44) is noted; the
// walk stops at No Next Header (59), at ESP (50), whose contents are
// encrypted, and at anything else, which is the upper layer. The chain is
// bounded (`maximumExtensionHeaders`) so a crafted packet cannot make the
// walk long; every length is checked against the payload.

/// A checked view of an IPv6 packet in borrowed bytes.
public struct IPv6View {
    /// The packet, cut to its header and payload length.
    public let bytes: UnsafeRawBufferPointer

    public static let headerLength = 40
    /// The most extension headers walked before the packet is refused.
    public static let maximumExtensionHeaders = 8

    /// A fragment header's fields.
    public struct Fragment: Sendable, Equatable {
        /// The offset of this fragment's data, in bytes.
        public var offset: Int
        public var moreFragments: Bool
        public var identification: UInt32
        /// The first header of the fragmentable part (the Fragment header's Next Header).
        public var nextHeader: IPProtocol
        /// Where this fragment's data begins in the packet: just after the Fragment header.
        public var dataOffset: Int
    }

    /// Where the extension headers lead.
    public struct UpperLayer {
        /// The upper-layer protocol (59: none).
        public var `protocol`: IPProtocol
        /// Its header and data.
        public var payload: UnsafeRawBufferPointer
        /// The fragment header on the way, if any.
        public var fragment: Fragment?
    }

    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw WireError(.truncated, .ipv6, "header") }
        guard bytes[0] >> 4 == 6 else { throw WireError(.badValue, .ipv6, "version") }
        let payloadLength = Int(bytes.be16(4))
        guard Self.headerLength + payloadLength <= bytes.count else { throw WireError(.truncated, .ipv6, "payload") }
        self.bytes = bytes.slice(0, Self.headerLength + payloadLength)
    }

    public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: bytes.be16(0) >> 4) }
    public var flowLabel: UInt32 { bytes.be32(0) & 0x000F_FFFF }
    public var payloadLength: Int { Int(bytes.be16(4)) }
    /// The first header after the fixed one (an extension header or the upper layer).
    public var nextHeader: IPProtocol { IPProtocol(rawValue: bytes[6]) }
    public var hopLimit: UInt8 { bytes[7] }
    public var source: IPv6Address { IPv6Address(bytes, at: 8) }
    public var destination: IPv6Address { IPv6Address(bytes, at: 24) }
    /// Everything after the fixed header.
    public var payload: UnsafeRawBufferPointer { bytes.suffix(from: Self.headerLength) }

    /// The upper-layer header past the extension headers.
    public func upperLayer() throws(WireError) -> UpperLayer {
        var next = bytes[6]
        var offset = Self.headerLength
        var fragment: Fragment?
        for _ in 0...Self.maximumExtensionHeaders {
            let length: Int
            switch next {
            case 0, 43, 60:
                guard offset + 8 <= bytes.count else { throw WireError(.truncated, .ipv6, "extension header") }
                length = (Int(bytes[offset + 1]) + 1) * 8
            case 51:
                guard offset + 8 <= bytes.count else { throw WireError(.truncated, .ipv6, "authentication header") }
                length = (Int(bytes[offset + 1]) + 2) * 4
            case 44:
                guard offset + 8 <= bytes.count else { throw WireError(.truncated, .ipv6, "fragment header") }
                let field = bytes.be16(offset + 2)
                fragment = Fragment(offset: Int(field & 0xFFF8), moreFragments: field & 1 != 0,
                                    identification: bytes.be32(offset + 4), nextHeader: IPProtocol(rawValue: bytes[offset]),
                                    dataOffset: offset + 8)
                length = 8
            default:
                return UpperLayer(protocol: IPProtocol(rawValue: next), payload: bytes.suffix(from: offset), fragment: fragment)
            }
            guard offset + length <= bytes.count else { throw WireError(.badLength, .ipv6, "extension header length") }
            next = bytes[offset]
            offset += length
            if fragment.map({ $0.offset != 0 }) == true {
                // Only the first fragment holds the upper-layer header.
                return UpperLayer(protocol: IPProtocol(rawValue: next), payload: bytes.suffix(from: offset), fragment: fragment)
            }
        }
        throw WireError(.unsupported, .ipv6, "extension header chain")
    }
}

extension IPProtocol {
    /// No Next Header (RFC 8200 §4.7): nothing follows.
    public static let noNextHeader = IPProtocol(rawValue: 59)
    /// The Fragment header (RFC 8200 §4.5).
    public static let ipv6Fragment = IPProtocol(rawValue: 44)
}

/// An IPv6 header without extension headers, as a value.
public struct IPv6Header: Hashable, Sendable {
    public var source: IPv6Address
    public var destination: IPv6Address
    public var nextHeader: IPProtocol
    public var payloadLength: Int
    public var hopLimit: UInt8

    public init(source: IPv6Address, destination: IPv6Address, nextHeader: IPProtocol, payloadLength: Int, hopLimit: UInt8 = 64) {
        self.source = source
        self.destination = destination
        self.nextHeader = nextHeader
        self.payloadLength = payloadLength
        self.hopLimit = hopLimit
    }

    /// Appends the 40-byte header (traffic class and flow label 0).
    public func emit(into out: inout [UInt8]) {
        out.appendBE32(6 << 28)
        out.appendBE16(UInt16(truncatingIfNeeded: payloadLength))
        out.append(nextHeader.rawValue)
        out.append(hopLimit)
        source.append(to: &out)
        destination.append(to: &out)
    }
}

/// A Fragment header (RFC 8200 §4.5) as a value: what follows it, where
/// the fragment's data sits in the packet (a multiple of 8 bytes), whether
/// more follow, and the packet's identification.
public struct IPv6FragmentHeader: Hashable, Sendable {
    public var nextHeader: IPProtocol
    public var offset: Int
    public var moreFragments: Bool
    public var identification: UInt32

    public init(nextHeader: IPProtocol, offset: Int, moreFragments: Bool, identification: UInt32) {
        self.nextHeader = nextHeader
        self.offset = offset
        self.moreFragments = moreFragments
        self.identification = identification
    }

    public static let length = 8

    /// Appends the 8-byte header.
    public func emit(into out: inout [UInt8]) {
        out.append(nextHeader.rawValue)
        out.append(0)
        out.appendBE16(UInt16(truncatingIfNeeded: offset) & 0xFFF8 | (moreFragments ? 1 : 0))
        out.appendBE32(identification)
    }
}
