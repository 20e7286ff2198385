/// An IPv4 or an IPv6 address: what a NAT flow's ends are, whichever
/// family the guest speaks.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family's text form; nil if it is neither.
    public init?(_ text: some StringProtocol) {
        if let v4 = IPv4Address(text) {
            self = .v4(v4)
        } else if let v6 = IPv6Address(text) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    public var v4: IPv4Address? {
        if case .v4(let address) = self { return address }
        return nil
    }

    public var v6: IPv6Address? {
        if case .v6(let address) = self { return address }
        return nil
    }

    /// The address as IPv6: itself, or an IPv4 one IPv4-mapped.
    public var asIPv6: IPv6Address {
        switch self {
        case .v4(let address): IPv6Address(mapping: address)
        case .v6(let address): address
        }
    }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    /// The address with a port, as URLs and logs write it: `192.0.2.1:80`, `[2001:db8::1]:80`.
    public func with(port: UInt16) -> String {
        switch self {
        case .v4(let address): "\(address):\(port)"
        case .v6(let address): "[\(address)]:\(port)"
        }
    }
}

extension InternetChecksum {
    /// Adds the pseudo-header of TCP and UDP for either family. The two ends
    /// of a packet are of one family; were they not, the IPv4 one is summed
    /// in its IPv4-mapped form.
    public mutating func addPseudoHeader(source: IPAddress, destination: IPAddress, protocol: IPProtocol, length: Int) {
        switch (source, destination) {
        case (.v4(let source), .v4(let destination)):
            addPseudoHeader(source: source, destination: destination, protocol: `protocol`, length: length)
        case (.v6(let source), .v6(let destination)):
            addPseudoHeader(source: source, destination: destination, protocol: `protocol`, length: length)
        default:
            addPseudoHeader(source: source.asIPv6, destination: destination.asIPv6, protocol: `protocol`, length: length)
        }
    }
}

extension IPv6Address {
    /// ::ffff:a.b.c.d, the IPv4-mapped form of `address`.
    public init(mapping address: IPv4Address) {
        self.init(high: 0, low: 0xFFFF_0000_0000 | UInt64(address.rawValue))
    }
}
