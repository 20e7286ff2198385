// The addresses that are the proxy's host itself: those of its interfaces
// (IPv4 and IPv6) and every prefix of an IPv4 `local` route (`ip route add
// local 10.99.0.0/24 dev lo` makes the whole /24 answer on this host). A
// guest reaching any of them reaches the host's own services, as through loopback.
import SovnetWire

/// Host addresses and local prefixes, for `NATPolicy`.
public struct HostAddressSet: Sendable, Equatable {
    /// Single addresses (interface addresses, /32 local routes).
    public private(set) var addresses: Set<IPv4Address>
    /// Local routes shorter than /32, as network and prefix length.
    public private(set) var prefixes: [LocalPrefix]
    /// The IPv6 addresses of the host's interfaces.
    public private(set) var ipv6Addresses: Set<IPv6Address>

    /// A prefix of a local route.
    public struct LocalPrefix: Sendable, Equatable, Hashable {
        public var network: IPv4Address
        public var length: Int

        public init(_ network: IPv4Address, length: Int) {
            self.network = network.masked(prefixLength: length)
            self.length = length
        }
    }

    public init(addresses: Set<IPv4Address> = [], prefixes: [LocalPrefix] = [], ipv6Addresses: Set<IPv6Address> = []) {
        self.addresses = addresses
        self.ipv6Addresses = ipv6Addresses
        self.prefixes = []
        for prefix in prefixes {
            if prefix.length >= 32 {
                self.addresses.insert(prefix.network)
            } else if !self.prefixes.contains(prefix) {
                self.prefixes.append(prefix)
            }
        }
    }

    public func contains(_ address: IPv4Address) -> Bool {
        addresses.contains(address) || prefixes.contains { address.masked(prefixLength: $0.length) == $0.network }
    }

    public func contains(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let address): contains(address)
        case .v6(let address): ipv6Addresses.contains(address)
        }
    }
}
