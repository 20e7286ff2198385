import SovnetTime
import SovnetWire

/// What a DHCP server granted: the address and the settings that come with it.
public struct DHCPLease: Hashable, Sendable {
    public var address: IPv4Address
    public var prefixLength: Int
    public var router: IPv4Address?
    public var dnsServers: [IPv4Address]
    public var domainName: String?
    public var searchDomains: [DNSName]
    public var mtu: Int?
    /// The server's identifier (option 54), where renewals go.
    public var server: IPv4Address
    /// The server's MAC address, learned from its reply, for unicast renewals.
    public var serverMAC: MACAddress
    /// Lease time, T1 and T2, in seconds.
    public var leaseTime: UInt32
    public var renewalTime: UInt32
    public var rebindingTime: UInt32
    /// When the request that led to this lease was sent; the times count from it.
    public var start: MonotonicInstant

    /// The instants at which to renew, rebind and give the address up.
    public var renewAt: MonotonicInstant { start + .seconds(Int64(renewalTime)) }
    public var rebindAt: MonotonicInstant { start + .seconds(Int64(rebindingTime)) }
    public var expiresAt: MonotonicInstant { start + .seconds(Int64(leaseTime)) }

    /// Whether two leases configure the interface the same way (times aside).
    public func sameConfiguration(as other: DHCPLease) -> Bool {
        address == other.address && prefixLength == other.prefixLength && router == other.router
            && dnsServers == other.dnsServers && domainName == other.domainName
            && searchDomains == other.searchDomains && mtu == other.mtu
    }
}
