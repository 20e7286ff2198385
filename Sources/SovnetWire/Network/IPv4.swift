// IPv4 headers (RFC 791).
//
// Parsing checks version, header length, total length and the header
// checksum. Options are skipped (the payload starts after them) and are not
// kept in the header value. Fragments are recognised and reported, not
// reassembled: `isFragment` tells a caller to treat the payload as partial.
// Bytes after the total length (Ethernet padding) are not part of the payload.

/// The protocol number carried in an IPv4 header.
public struct IPProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let icmp = IPProtocol(rawValue: 1)
    public static let tcp = IPProtocol(rawValue: 6)
    public static let udp = IPProtocol(rawValue: 17)
    public static let icmpv6 = IPProtocol(rawValue: 58)

    public var description: String {
        switch self {
        case .icmp: "ICMP"
        case .tcp: "TCP"
        case .udp: "UDP"
        case .icmpv6: "ICMPv6"
        default: "proto-\(rawValue)"
        }
    }
}

/// A checked view of an IPv4 packet in borrowed bytes.
public struct IPv4View {
    /// The packet, cut to its total length.
    public let bytes: UnsafeRawBufferPointer

    public static let minimumHeaderLength = 20

    public init(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError) {
        guard bytes.count >= Self.minimumHeaderLength else {
            throw WireError(.truncated, .ipv4, "header")
        }
        guard bytes[0] >> 4 == 4 else { throw WireError(.badValue, .ipv4, "version") }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= Self.minimumHeaderLength else {
            throw WireError(.badLength, .ipv4, "header length")
        }
        guard bytes.count >= headerLength else { throw WireError(.truncated, .ipv4, "options") }
        let totalLength = Int(bytes.be16(2))
        guard totalLength >= headerLength else { throw WireError(.badLength, .ipv4, "total length") }
        guard totalLength <= bytes.count else { throw WireError(.truncated, .ipv4, "payload") }
        if verifyChecksum, InternetChecksum.of(bytes.slice(0, headerLength)) != 0 {
            throw WireError(.badChecksum, .ipv4, "header checksum")
        }
        self.bytes = bytes.slice(0, totalLength)
    }

    public var headerLength: Int { Int(bytes[0] & 0x0F) * 4 }
    public var dscp: UInt8 { bytes[1] >> 2 }
    public var ecn: UInt8 { bytes[1] & 0x3 }
    public var totalLength: Int { Int(bytes.be16(2)) }
    public var identification: UInt16 { bytes.be16(4) }
    public var dontFragment: Bool { bytes[6] & 0x40 != 0 }
    public var moreFragments: Bool { bytes[6] & 0x20 != 0 }
    /// Offset of this fragment's data in the original payload, in bytes.
    public var fragmentOffset: Int { Int(bytes.be16(6) & 0x1FFF) * 8 }
    /// Whether this packet is one fragment of a larger datagram.
    public var isFragment: Bool { moreFragments || fragmentOffset != 0 }
    public var ttl: UInt8 { bytes[8] }
    public var `protocol`: IPProtocol { IPProtocol(rawValue: bytes[9]) }
    public var checksum: UInt16 { bytes.be16(10) }
    public var source: IPv4Address { IPv4Address(bytes, at: 12) }
    public var destination: IPv4Address { IPv4Address(bytes, at: 16) }
    /// The bytes after the header, up to the total length.
    public var payload: UnsafeRawBufferPointer { bytes.suffix(from: headerLength) }
}

/// An IPv4 header as a value (options are not kept).
public struct IPv4Header: Hashable, Sendable {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var `protocol`: IPProtocol
    public var payloadLength: Int
    public var ttl: UInt8
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// Fragment offset in bytes; a multiple of 8.
    public var fragmentOffset: Int
    public var dscp: UInt8
    public var ecn: UInt8

    public init(source: IPv4Address, destination: IPv4Address, protocol: IPProtocol,
                payloadLength: Int, ttl: UInt8 = 64, identification: UInt16 = 0,
                dontFragment: Bool = true, moreFragments: Bool = false, fragmentOffset: Int = 0,
                dscp: UInt8 = 0, ecn: UInt8 = 0) {
        self.source = source
        self.destination = destination
        self.protocol = `protocol`
        self.payloadLength = payloadLength
        self.ttl = ttl
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.dscp = dscp
        self.ecn = ecn
    }

    public init(_ view: IPv4View) {
        self.init(source: view.source, destination: view.destination, protocol: view.protocol,
                  payloadLength: view.totalLength - view.headerLength, ttl: view.ttl,
                  identification: view.identification, dontFragment: view.dontFragment,
                  moreFragments: view.moreFragments, fragmentOffset: view.fragmentOffset,
                  dscp: view.dscp, ecn: view.ecn)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError) -> IPv4Header {
        IPv4Header(try IPv4View(bytes, verifyChecksum: verifyChecksum))
    }

    public static func parse(_ bytes: [UInt8], verifyChecksum: Bool = true) throws(WireError) -> IPv4Header {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw, verifyChecksum: verifyChecksum) }
    }

    public var bufferLength: Int { IPv4View.minimumHeaderLength }

    /// Appends the 20-byte header with its checksum; the payload follows it.
    public func emit(into out: inout [UInt8]) {
        let start = out.count
        out.append(0x45)
        out.append(dscp << 2 | ecn & 0x3)
        out.appendBE16(UInt16(truncatingIfNeeded: IPv4View.minimumHeaderLength + payloadLength))
        out.appendBE16(identification)
        var flags: UInt16 = UInt16(truncatingIfNeeded: fragmentOffset / 8) & 0x1FFF
        if dontFragment { flags |= 0x4000 }
        if moreFragments { flags |= 0x2000 }
        out.appendBE16(flags)
        out.append(ttl)
        out.append(self.protocol.rawValue)
        out.appendBE16(0)
        source.append(to: &out)
        destination.append(to: &out)
        let checksum = out.withUnsafeBytes { InternetChecksum.of($0.slice(start, start + 20)) }
        out.storeBE16(checksum, at: start + 10)
    }
}
