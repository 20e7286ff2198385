// An IPv4 or IPv6 packet as the layers above IP see it: its addresses, the
// upper-layer protocol, and where that protocol's header begins, whatever
// the family (IPv4 options or IPv6 extension headers before it).

/// A parsed IP packet of either family.
public struct IPPacket {
    public var source: IPAddress
    public var destination: IPAddress
    /// The upper-layer protocol (past IPv6 extension headers).
    public var `protocol`: IPProtocol
    /// The whole IP packet.
    public var bytes: UnsafeRawBufferPointer
    /// Where the upper-layer header begins in `bytes`.
    public var transportOffset: Int
    /// Whether the packet is a fragment (IPv4's MF or offset, an IPv6 Fragment header).
    public var isFragment: Bool

    public init(_ ip: IPv4View) {
        (source, destination, self.protocol) = (.v4(ip.source), .v4(ip.destination), ip.protocol)
        (bytes, transportOffset, isFragment) = (ip.bytes, ip.headerLength, ip.isFragment)
    }

    /// `upper` is `ip`'s upper layer, as `IPv6View.upperLayer()` found it.
    public init(_ ip: IPv6View, _ upper: IPv6View.UpperLayer) {
        (source, destination, self.protocol) = (.v6(ip.source), .v6(ip.destination), upper.protocol)
        (bytes, transportOffset, isFragment) = (ip.bytes, ip.bytes.count - upper.payload.count, upper.fragment != nil)
    }

    /// The IPv4 or IPv6 packet in an Ethernet frame's payload of `etherType`;
    /// nil for another EtherType or a packet that does not parse (the IPv4
    /// header checksum is checked only with `verifyChecksum`).
    public init?(_ payload: UnsafeRawBufferPointer, etherType: EtherType, verifyChecksum: Bool = false) {
        if etherType == .ipv4, let ip = try? IPv4View(payload, verifyChecksum: verifyChecksum) {
            self.init(ip)
        } else if etherType == .ipv6, let ip = try? IPv6View(payload), let upper = try? ip.upperLayer() {
            self.init(ip, upper)
        } else {
            return nil
        }
    }

    /// The upper-layer header and what follows it.
    public var transport: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[transportOffset...]) }

    /// The IP headers and the transport's first 8 bytes: what an ICMP error quotes.
    public var quote: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes.prefix(transportOffset + 8)) }
}
