// Which host address a guest's packet goes to. The translation table
// (`-nat`, gvproxy's default 192.168.127.254 → 127.0.0.1) rewrites virtual
// addresses; every other destination goes where the guest asked, except the
// host's loopback and its own addresses (interface addresses and `local`
// routes, `HostAddressSet`, which lead to the same services; both reachable
// only through a translation unless allowed), and
// link-local 169.254.0.0/16 (cloud metadata services) unless allowed; gvproxy's
// `-ec2-metadata-access` opens only the metadata service, 169.254.169.254, over TCP.
import SovnetWire

/// Where guest traffic may go on the host.
public struct NATPolicy: Sendable {
    /// Virtual address → host address.
    public var translations: [IPv4Address: IPv4Address]
    public var allowLinkLocal: Bool
    /// Let guests reach the host's own interface addresses directly.
    public var allowHostAddresses: Bool
    /// Let guests reach the cloud metadata service, 169.254.169.254, over TCP.
    public var allowMetadataService = false

    /// The cloud metadata service's address (AWS EC2 and others).
    public static let metadataService = IPv4Address(169, 254, 169, 254)

    public init(translations: [IPv4Address: IPv4Address] = [IPv4Address(192, 168, 127, 254): IPv4Address(127, 0, 0, 1)],
                allowLinkLocal: Bool = false, allowHostAddresses: Bool = false) {
        self.translations = translations
        self.allowLinkLocal = allowLinkLocal
        self.allowHostAddresses = allowHostAddresses
    }

    /// What happens to a packet for `address`.
    public enum Decision: Equatable, Sendable {
        /// Send it to this host address.
        case host(IPv4Address)
        /// Drop it, counted under the reason.
        case refuse(DropReason)
    }

    /// - Parameters:
    ///   - transport: the packet's protocol (the metadata service is open to TCP only).
    ///   - hostAddresses: the host's own addresses now.
    public func decide(_ address: IPv4Address, transport: IPProtocol = .tcp,
                       hostAddresses: HostAddressSet = HostAddressSet()) -> Decision {
        if let translated = translations[address] { return .host(translated) }
        let first = address.rawValue >> 24
        if first == 127 { return .refuse(.loopbackDestination) }
        if !allowHostAddresses, hostAddresses.contains(address) { return .refuse(.hostAddress) }
        if address.isLinkLocal, !allowLinkLocal,
           !(allowMetadataService && address == Self.metadataService && transport == .tcp) {
            return .refuse(.linkLocalDestination)
        }
        if first == 0 || first >= 224 { return .refuse(.noRoute) }
        return .host(address)
    }
}
