import SovnetWire

/// A local DNS zone: names answered by the gateway itself.
public struct DNSZoneConfiguration: Hashable, Sendable {
    public var name: DNSName
    /// Names relative to the zone (`db` in `example.test`), or `@` for the zone itself.
    public var records: [String: IPv4Address]
    /// The answer for any other name in the zone; without it they are NXDOMAIN.
    public var defaultAddress: IPv4Address?
    /// Records matched by a regular expression, tried in order after `records`.
    public var patterns: [DNSNamePattern]

    public init(name: DNSName, records: [String: IPv4Address], defaultAddress: IPv4Address?, patterns: [DNSNamePattern] = []) {
        self.name = name
        self.records = records
        self.defaultAddress = defaultAddress
        self.patterns = patterns
    }
}

/// gvproxy's `regexp` record: names of a zone whose part before the zone
/// matches the expression (anywhere in it, as Go's `MatchString`) resolve to `address`.
public struct DNSNamePattern: Hashable, Sendable {
    public let pattern: String
    public let address: IPv4Address
    /// Immutable once made; Regex compiles itself once, atomically, so
    /// sharing it between threads is safe though `AnyRegexOutput` is not Sendable.
    nonisolated(unsafe) private let expression: Regex<AnyRegexOutput>

    /// nil when `pattern` is not a regular expression.
    public init?(_ pattern: String, address: IPv4Address) {
        guard let expression = try? Regex(pattern) else { return nil }
        self.pattern = pattern
        self.address = address
        self.expression = expression.ignoresCase()
    }

    /// Whether `relativeName` (the query name without the zone, lower-cased) matches.
    public func matches(_ relativeName: String) -> Bool {
        (try? expression.firstMatch(in: relativeName)) != nil
    }

    public static func == (left: DNSNamePattern, right: DNSNamePattern) -> Bool {
        left.pattern == right.pattern && left.address == right.address
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(pattern)
        hasher.combine(address)
    }
}

/// The shape of a virtual network, with gvproxy's defaults.
public struct VirtualNetworkConfiguration: Sendable {
    public var gatewayAddress: IPv4Address
    public var gatewayMAC: MACAddress
    public var prefixLength: Int
    /// Addresses the gateway answers ARP for besides its own (gvproxy: the host alias .254).
    public var virtualAddresses: [IPv4Address]
    public var mtu: Int
    public var leaseTime: UInt32
    public var staticBindings: [MACAddress: IPv4Address]
    public var searchDomains: [DNSName]
    /// The host alias (gvproxy: 192.168.127.254), named `host.` in the local DNS zones.
    public var hostAddress: IPv4Address
    /// How many upstream resolvers the driver has for forwarded DNS queries.
    public var upstreamResolverCount: Int
    /// Local DNS zones besides the default `containers.internal` and `docker.internal`.
    public var dnsZones: [DNSZoneConfiguration] = []
    /// Broadcast and multicast frames a port may send per second on average,
    /// and in one burst; beyond that they are dropped as a storm.
    public var broadcastRate: Int = 1000
    public var broadcastBurst: Int = 200
    /// Source MACs one port may use (guests bridging containers use several).
    public var maximumMACsPerPort = 256
    /// DHCP bindings (offers included, and addresses taken by use) one port may hold.
    public var maximumLeasesPerPort = 16
    /// DNS queries waiting for an upstream, in all and from one port.
    public var maximumPendingQueries = 4096
    public var maximumPendingQueriesPerPort = 256
    /// Whether the gateway speaks IPv6 (`--no-ipv6`: not, as gvproxy; IPv6
    /// frames are still switched between guests, their sources still checked).
    public var ipv6 = true
    /// The /64 guests configure IPv6 addresses in by SLAAC (a unique local prefix).
    public var ipv6Prefix = IPv6Address(high: 0xFD00 << 48, low: 0)
    /// The host alias over IPv6 (::254 of the prefix; the NAT translates it to the host's ::1).
    public var ipv6HostAddress = IPv6Address(high: 0xFD00 << 48, low: 0x254)
    /// IPv6 addresses the gateway answers neighbour discovery for besides its own (the host alias).
    public var ipv6VirtualAddresses = [IPv6Address(high: 0xFD00 << 48, low: 0x254)]
    /// IPv6 addresses one port may use at once (SLAAC, privacy and link-local addresses).
    public var maximumIPv6AddressesPerPort = 16
    /// Interface identifiers DHCPv6 hands out addresses from; nil: DHCPv6 is stateless only.
    public var dhcpv6Pool: ClosedRange<UInt64>?
    /// The pool `--dhcpv6-addresses` turns on: ::1:0 to ::1:ffff of the prefix.
    public static let defaultDHCPv6Pool: ClosedRange<UInt64> = 0x1_0000...0x1_FFFF

    public init(gatewayAddress: IPv4Address = IPv4Address(192, 168, 127, 1),
                gatewayMAC: MACAddress = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD),
                prefixLength: Int = 24,
                virtualAddresses: [IPv4Address] = [IPv4Address(192, 168, 127, 254)],
                mtu: Int = 1500, leaseTime: UInt32 = 3600,
                staticBindings: [MACAddress: IPv4Address] = [
                    MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE): IPv4Address(192, 168, 127, 2),
                ],
                searchDomains: [DNSName] = [],
                hostAddress: IPv4Address = IPv4Address(192, 168, 127, 254),
                upstreamResolverCount: Int = 0) {
        self.gatewayAddress = gatewayAddress
        self.gatewayMAC = gatewayMAC
        self.prefixLength = prefixLength
        self.virtualAddresses = virtualAddresses
        self.mtu = mtu
        self.leaseTime = leaseTime
        self.staticBindings = staticBindings
        self.searchDomains = searchDomains
        self.hostAddress = hostAddress
        self.upstreamResolverCount = upstreamResolverCount
    }

    public var network: IPv4Address { gatewayAddress.masked(prefixLength: prefixLength) }

    /// A /64 for guests' IPv6 written as `fd00::/64`: a unicast network (not
    /// link-local, multicast or ::), nil otherwise.
    public static func ipv6Network(_ text: String) -> IPv6Address? {
        let parts = text.split(separator: "/")
        guard parts.count == 2, parts[1] == "64", let base = IPv6Address(parts[0]) else { return nil }
        let network = base.masked(prefixLength: 64)
        guard !network.isMulticast, !network.isLinkLocal, network != .any else { return nil }
        return network
    }

    /// Makes `network` (a /64) the guests' IPv6 network: the gateway its
    /// ::1, the host alias (and the one virtual address) its ::254.
    public mutating func useIPv6Network(_ network: IPv6Address) {
        ipv6Prefix = network
        ipv6HostAddress = IPv6Address(high: network.high, low: 0x254)
        ipv6VirtualAddresses = [ipv6HostAddress]
    }

    /// The gateway's IPv6 addresses: ::1 of the prefix, and its link-local one (from its MAC).
    public var gatewayIPv6: IPv6Address { IPv6Address(high: ipv6Prefix.high, low: 1) }
    public var gatewayLinkLocal: IPv6Address { IPv6Address(linkLocalFor: gatewayMAC) }
    /// The IPv6 addresses the gateway answers neighbour discovery for: its own two and the virtual ones.
    public var gatewayIPv6Addresses: [IPv6Address] { [gatewayIPv6, gatewayLinkLocal] + ipv6VirtualAddresses }

    /// Whether `address` is one of `gatewayIPv6Addresses` (asked of every guest frame: nothing is allocated).
    public func isGatewayIPv6Address(_ address: IPv6Address) -> Bool {
        address == gatewayIPv6 || address == gatewayLinkLocal || ipv6VirtualAddresses.contains(address)
    }

    /// The DHCPv6 server's settings: the gateway's IPv6 address as DNS
    /// server, the search domains, addresses from `dhcpv6Pool` for the lease time.
    public var dhcpv6: DHCPv6ServerConfiguration {
        DHCPv6ServerConfiguration(gatewayMAC: gatewayMAC, prefix: ipv6Prefix, pool: dhcpv6Pool, dnsServers: [gatewayIPv6],
                                  searchDomains: searchDomains, leaseTime: leaseTime)
    }

    /// The DHCP server's settings: the gateway as router and DNS server, the
    /// pool from the first free host address to the one before the last.
    public var dhcp: DHCPServerConfiguration {
        let hostBits = UInt32(32 - prefixLength)
        let first = IPv4Address(rawValue: network.rawValue + 1)
        let last = IPv4Address(rawValue: network.rawValue + (hostBits >= 32 ? UInt32.max : (1 << hostBits) - 2))
        var dhcp = DHCPServerConfiguration(
            serverAddress: gatewayAddress, prefixLength: prefixLength, router: gatewayAddress,
            dnsServers: [gatewayAddress], searchDomains: searchDomains, mtu: mtu, leaseTime: leaseTime,
            staticBindings: staticBindings, pool: first...last, reserved: Set(virtualAddresses + [gatewayAddress]))
        dhcp.maximumLeasesPerPort = maximumLeasesPerPort
        return dhcp
    }
}
