// The guest side's part in IPv6 autoconfiguration, sans I/O. The guest
// kernel does SLAAC by itself (RFC 4862): it takes the prefix, the default
// route and the MTU from router advertisements arriving on the tap. Two
// things it does not do are left to `sovnet forward`, which sees every
// frame from the host:
//
// - Soliciting when the link to the host comes up (`solicitation`): the
//   kernel solicits when the tap comes up, which may be before the host is
//   reachable, and then waits for the next periodic advertisement. A router
//   solicitation from the unspecified address, with no link-layer option
//   (RFC 4861 §4.1), makes the gateway advertise to all nodes at once.
// - DNS (RFC 8106): the recursive DNS server and DNS search list options of
//   an advertisement from a router (hop limit 255, a link-local source, RFC
//   4861 §6.1.2), kept for their lifetime, so they can be written to
//   resolv.conf beside the DHCPv4 lease's. A lifetime of 0 removes them.
import SovnetTime
import SovnetWire

/// DNS servers learned from router advertisements, and the solicitation that asks for one.
public struct RouterDiscovery: Sendable {
    /// The servers and when each stops being valid.
    private var servers: [(address: IPv6Address, until: MonotonicInstant)] = []
    /// The search domains and when they stop being valid.
    private var search: (names: [DNSName], until: MonotonicInstant)?
    /// The most servers kept (RFC 8106 §5.3.1 suggests three).
    public static let maximumServers = 3

    public init() {}

    /// The DNS servers valid now, in the order the router gave them.
    public func dnsServers(now: MonotonicInstant) -> [IPv6Address] {
        servers.filter { $0.until > now }.map { $0.address }
    }

    /// The search domains valid now.
    public func searchDomains(now: MonotonicInstant) -> [DNSName] {
        search.flatMap { $0.until > now ? $0.names : nil } ?? []
    }

    /// When the next server or the search list expires, if any will.
    public var nextDeadline: MonotonicInstant? { (servers.map { $0.until } + [search?.until].compactMap { $0 }).min() }

    /// Forgets expired servers and search domains; true when they changed.
    public mutating func expire(now: MonotonicInstant) -> Bool {
        let before = servers.count
        servers.removeAll { $0.until <= now }
        let searchExpired = search.map { $0.until <= now } ?? false
        if searchExpired { search = nil }
        return servers.count != before || searchExpired
    }

    /// Takes a frame from the host; true when it was a router advertisement
    /// that changed the DNS servers or search domains.
    public mutating func receive(_ frame: UnsafeRawBufferPointer, now: MonotonicInstant) -> Bool {
        // Most frames are not IPv6 with ICMPv6 right after the header: one look at three bytes says so.
        guard frame.count > 54, frame[12] == 0x86, frame[13] == 0xDD, frame[20] == IPProtocol.icmpv6.rawValue,
              let ethernet = try? EthernetView(frame), ethernet.etherType == .ipv6, let ip = try? IPv6View(ethernet.payload),
              ip.hopLimit == 255, ip.source.isLinkLocal, let upper = try? ip.upperLayer(), upper.protocol == .icmpv6,
              upper.fragment == nil, upper.payload.first == ICMPv6Type.routerAdvertisement.rawValue,
              let message = try? ICMPv6View(upper.payload, source: ip.source, destination: ip.destination),
              let options = try? message.options() else { return false }
        let before = (dnsServers(now: now), searchDomains(now: now))
        for option in options {
            switch option {
            case .dnsServers(let addresses, let lifetime):
                for address in addresses {
                    servers.removeAll { $0.address == address }
                    if lifetime > 0 { servers.append((address, now + .seconds(Int64(lifetime)))) }
                }
            case .searchList(let data, let lifetime):
                guard let names = NDPOption.searchDomains(data) else { continue }
                search = lifetime > 0 && !names.isEmpty ? (Array(names.prefix(Self.maximumSearchDomains)), now + .seconds(Int64(lifetime))) : nil
            default:
                break
            }
        }
        servers = Array(servers.suffix(Self.maximumServers))
        return (dnsServers(now: now), searchDomains(now: now)) != before
    }

    /// The most search domains kept (glibc reads six).
    public static let maximumSearchDomains = 6

    /// A router solicitation from `mac`, from the unspecified address to all routers.
    public static func solicitation(from mac: MACAddress) -> [UInt8] {
        var frame: [UInt8] = []
        EthernetHeader(destination: IPv6Address.allRouters.multicastMAC, source: mac, etherType: .ipv6).emit(into: &frame)
        IPv6Header(source: .any, destination: .allRouters, nextHeader: .icmpv6, payloadLength: 8, hopLimit: 255).emit(into: &frame)
        ICMPv6View.emit(type: .routerSolicitation, body: [0, 0, 0, 0], source: .any, destination: .allRouters, into: &frame)
        return frame
    }
}
