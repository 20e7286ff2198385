// Which host address a guest's packet goes to. The translation table
// (`-nat`; gvproxy's default 192.168.127.254 → 127.0.0.1, and sovnet's
// fd00::254 → ::1) rewrites virtual addresses, to an address of either
// family; every other destination goes where the guest asked, except the
// host's loopback and its own addresses (interface addresses and `local`
// routes, `HostAddressSet`, which lead to the same services; both reachable
// only through a translation unless allowed), and link-local addresses
// (169.254.0.0/16, cloud metadata services; fe80::/10) unless allowed;
// gvproxy's `-ec2-metadata-access` opens only the metadata service,
// 169.254.169.254, over TCP. IPv6 destinations that are IPv4 in disguise
// (::ffff:0:0/96, which a host socket would reach as IPv4, loopback
// included) and the unspecified and multicast ones have no route.
import SovnetWire

/// Where guest traffic may go on the host.
public struct NATPolicy: Sendable {
    /// Virtual address → host address.
    public var translations: [IPAddress: IPAddress]
    public var allowLinkLocal: Bool
    /// Let guests reach the host's own interface addresses directly.
    public var allowHostAddresses: Bool
    /// Let guests reach the cloud metadata service, 169.254.169.254, over TCP.
    public var allowMetadataService = false

    /// The cloud metadata service's address (AWS EC2 and others).
    public static let metadataService = IPv4Address(169, 254, 169, 254)

    /// The default translations: the host aliases to the host's loopback.
    public static let defaultTranslations: [IPAddress: IPAddress] = [
        .v4(IPv4Address(192, 168, 127, 254)): .v4(IPv4Address(127, 0, 0, 1)),
        .v6(IPv6Address(high: 0xFD00 << 48, low: 0x254)): .v6(.loopback),
    ]

    public init(translations: [IPAddress: IPAddress] = NATPolicy.defaultTranslations,
                allowLinkLocal: Bool = false, allowHostAddresses: Bool = false) {
        self.translations = translations
        self.allowLinkLocal = allowLinkLocal
        self.allowHostAddresses = allowHostAddresses
    }

    /// What happens to a packet for `address`.
    public enum Decision: Equatable, Sendable {
        /// Send it to this host address.
        case host(IPAddress)
        /// Drop it, counted under the reason.
        case refuse(DropReason)
    }

    /// - Parameters:
    ///   - transport: the packet's protocol (the metadata service is open to TCP only).
    ///   - hostAddresses: the host's own addresses now.
    public func decide(_ address: IPAddress, transport: IPProtocol = .tcp,
                       hostAddresses: HostAddressSet = HostAddressSet()) -> Decision {
        if let translated = translations[address] { return .host(translated) }
        let isLoopback = switch address {
        case .v4(let address): address.isLoopback
        case .v6(let address): address.isLoopback
        }
        if isLoopback { return .refuse(.loopbackDestination) }
        if !allowHostAddresses, hostAddresses.contains(address) { return .refuse(.hostAddress) }
        switch address {
        case .v4(let address):
            let first = address.rawValue >> 24
            if address.isLinkLocal, !allowLinkLocal,
               !(allowMetadataService && address == Self.metadataService && transport == .tcp) {
                return .refuse(.linkLocalDestination)
            }
            if first == 0 || first >= 224 { return .refuse(.noRoute) }
        case .v6(let address):
            if address.isLinkLocal, !allowLinkLocal { return .refuse(.linkLocalDestination) }
            if address == .any || address.isMulticast || address.isIPv4Mapped { return .refuse(.noRoute) }
        }
        return .host(address)
    }

    /// As `decide(_:transport:hostAddresses:)` for an IPv4 address.
    public func decide(_ address: IPv4Address, transport: IPProtocol = .tcp,
                       hostAddresses: HostAddressSet = HostAddressSet()) -> Decision {
        decide(.v4(address), transport: transport, hostAddresses: hostAddresses)
    }
}
