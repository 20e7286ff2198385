// Ethernet II frames (IEEE 802.3 with an EtherType), without the FCS, as a tap
// device and every gvproxy framing carry them.
//
// Up to two VLAN tags (802.1ad outer, 802.1Q inner) are skipped on parse so
// the payload is always the network-layer packet; the innermost tag is kept
// in the header value and emitted back as a single 802.1Q tag.

/// The 16-bit EtherType of an Ethernet II frame.
public struct EtherType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let ipv4 = EtherType(rawValue: 0x0800)
    public static let arp = EtherType(rawValue: 0x0806)
    public static let vlan = EtherType(rawValue: 0x8100)
    public static let ipv6 = EtherType(rawValue: 0x86DD)
    public static let qinq = EtherType(rawValue: 0x88A8)

    public var description: String {
        switch self {
        case .ipv4: "IPv4"
        case .arp: "ARP"
        case .ipv6: "IPv6"
        case .vlan: "802.1Q"
        case .qinq: "802.1ad"
        default: "0x" + hex2(UInt8(rawValue >> 8)) + hex2(UInt8(rawValue & 0xFF))
        }
    }
}

/// A checked view of an Ethernet II frame in borrowed bytes.
public struct EthernetView {
    /// The whole frame.
    public let bytes: UnsafeRawBufferPointer
    /// Where the network-layer payload starts: 14, plus 4 for each VLAN tag.
    public let payloadOffset: Int

    /// Length of an untagged header.
    public static let headerLength = 14
    /// Shortest frame on the wire without its FCS; shorter frames are padded.
    public static let minimumFrameLength = 60

    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else {
            throw WireError(.truncated, .ethernet, "header")
        }
        var offset = 12
        var tags = 0
        while EtherType(rawValue: bytes.be16(offset)) == .vlan
            || EtherType(rawValue: bytes.be16(offset)) == .qinq {
            tags += 1
            guard tags <= 2 else { throw WireError(.unsupported, .ethernet, "more than two VLAN tags") }
            offset += 4
            guard bytes.count >= offset + 2 else { throw WireError(.truncated, .ethernet, "VLAN tag") }
        }
        self.bytes = bytes
        self.payloadOffset = offset + 2
    }

    public var destination: MACAddress { MACAddress(bytes, at: 0) }
    public var source: MACAddress { MACAddress(bytes, at: 6) }
    /// The EtherType after any VLAN tags.
    public var etherType: EtherType { EtherType(rawValue: bytes.be16(payloadOffset - 2)) }
    /// The tag control information of the innermost VLAN tag, if tagged.
    public var vlanTCI: UInt16? { payloadOffset > 14 ? bytes.be16(payloadOffset - 4) : nil }
    /// The network-layer packet (with any Ethernet padding still on it).
    public var payload: UnsafeRawBufferPointer { bytes.suffix(from: payloadOffset) }
}

/// The header of an Ethernet II frame as a value.
public struct EthernetHeader: Hashable, Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    public var etherType: EtherType
    /// The 802.1Q tag control information, when the frame is tagged.
    public var vlanTCI: UInt16?

    public init(destination: MACAddress, source: MACAddress, etherType: EtherType, vlanTCI: UInt16? = nil) {
        self.destination = destination
        self.source = source
        self.etherType = etherType
        self.vlanTCI = vlanTCI
    }

    public init(_ view: EthernetView) {
        self.init(destination: view.destination, source: view.source,
                  etherType: view.etherType, vlanTCI: view.vlanTCI)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> EthernetHeader {
        EthernetHeader(try EthernetView(bytes))
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> EthernetHeader {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    public var bufferLength: Int { vlanTCI == nil ? 14 : 18 }

    public func emit(into out: inout [UInt8]) {
        destination.append(to: &out)
        source.append(to: &out)
        if let vlanTCI {
            out.appendBE16(EtherType.vlan.rawValue)
            out.appendBE16(vlanTCI)
        }
        out.appendBE16(etherType.rawValue)
    }

    /// Pads a frame that starts at `frameStart` of `out` to the Ethernet minimum.
    public static func padToMinimum(_ out: inout [UInt8], frameStart: Int = 0) {
        out.appendZeros(frameStart + EthernetView.minimumFrameLength - out.count)
    }
}
