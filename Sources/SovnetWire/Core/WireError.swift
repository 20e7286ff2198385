/// Why a byte string is not a valid packet of some format.
///
/// Every parser in `SovnetWire` reports bad input with this type instead of
/// trapping. It carries no heap storage, so building one on the packet path is
/// free.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of fault found.
    public enum Kind: String, Sendable {
        /// The bytes end before a header or field does.
        case truncated
        /// A length field points outside the bytes, or below a minimum.
        case badLength
        /// A field holds a value the format forbids.
        case badValue
        /// A checksum does not match the bytes it covers.
        case badChecksum
        /// A valid packet of a kind this code does not handle.
        case unsupported
    }

    /// The packet format whose parser found the fault.
    public enum Format: String, Sendable {
        case ethernet, arp, ipv4, ipv6, icmpv4, icmpv6, udp, tcp, dhcp, dhcpv6, dns
    }

    public let kind: Kind
    public let format: Format
    /// The header or field at fault, for logs.
    public let field: StaticString

    public init(_ kind: Kind, _ format: Format, _ field: StaticString) {
        self.kind = kind
        self.format = format
        self.field = field
    }

    public var description: String {
        "\(format.rawValue): \(kind.rawValue) \(field)"
    }

    public static func == (a: WireError, b: WireError) -> Bool {
        a.kind == b.kind && a.format == b.format && a.field.description == b.field.description
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(kind)
        hasher.combine(format)
        hasher.combine(field.description)
    }
}
