// The gateway's IPv6 (RFC 4861, RFC 4443): it answers neighbour
// solicitations for its addresses (its link-local one, from its MAC, ::1 of
// the network's /64, and the host alias), router solicitations with an
// advertisement of itself as the default router, the /64 for SLAAC (RFC
// 4862), the link's MTU, its own address as DNS server and the search
// domains (RFC 8106), the
// O flag for the stateless DHCPv6 it serves too (and M when DHCPv6 hands
// out addresses), and
// echo requests to its own addresses. Neighbour discovery counts only with
// hop limit 255, the sign that it was not forwarded (RFC 4861 §6.1).
// Routers' messages from guests (advertisements, redirects) are dropped,
// never switched to other guests.
import SovnetWire

/// What the gateway does with an IPv6 frame.
enum GatewayIPv6 {
    enum Outcome: Equatable {
        /// Send this frame back to the port the packet came from.
        case reply([UInt8])
        case drop(DropReason)
        /// Not for the gateway (multicast it does not listen to): nothing.
        case ignore
    }

    /// Whether a packet is a router's message (advertisement or redirect), which guests may not send.
    static func isRouterMessage(_ upper: IPv6View.UpperLayer) -> Bool {
        guard upper.protocol == .icmpv6, let type = upper.payload.first else { return false }
        return type == ICMPv6Type.routerAdvertisement.rawValue || type == ICMPv6Type.redirect.rawValue
    }

    /// The answer to a packet (`upper`: its upper layer) from the guest with MAC `sender`.
    /// - Parameter searchDomains: the DNS search list advertisements carry (DNSSL), as DHCP hands it out now.
    static func answer(_ ip: IPv6View, _ upper: IPv6View.UpperLayer, from sender: MACAddress,
                       _ configuration: VirtualNetworkConfiguration, searchDomains: [DNSName] = []) -> Outcome {
        let own = configuration.gatewayIPv6Addresses
        let listened = own + own.map(\.solicitedNode) + [.allNodes, .allRouters]
        guard listened.contains(ip.destination) else { return .ignore }
        guard upper.protocol == .icmpv6, upper.fragment == nil else {
            return ip.destination.isMulticast ? .ignore : .drop(.noService)
        }
        guard let icmp = try? ICMPv6View(upper.payload, source: ip.source, destination: ip.destination) else {
            return .drop(.malformedIPv6)
        }
        switch icmp.type {
        case .echoRequest where own.contains(ip.destination):
            guard icmp.bytes.count >= 8 else { return .drop(.malformedIPv6) }
            return .reply(frame(to: sender, from: ip.destination, to: ip.source, hopLimit: 64, type: .echoReply,
                                body: Array(icmp.bytes[4...]), configuration))
        case .neighborSolicitation:
            guard ip.hopLimit == 255, let target = try? icmp.target() else { return .drop(.malformedIPv6) }
            guard own.contains(target) else { return .ignore }
            // Solicited, override and router; to the asker, or to every node when it has no address yet (DAD).
            let solicited = ip.source != .any
            let body = NDPOption.advertisementBody(router: true, solicited: solicited, override: true, target: target,
                                                   options: [.targetLinkLayer(configuration.gatewayMAC)])
            return .reply(frame(to: solicited ? sender : IPv6Address.allNodes.multicastMAC, from: target,
                                to: solicited ? ip.source : .allNodes, hopLimit: 255, type: .neighborAdvertisement,
                                body: body, configuration))
        case .routerSolicitation:
            guard ip.hopLimit == 255 else { return .drop(.malformedIPv6) }
            let unicast = ip.source != .any
            return .reply(frame(to: unicast ? sender : IPv6Address.allNodes.multicastMAC,
                                from: configuration.gatewayLinkLocal, to: unicast ? ip.source : .allNodes, hopLimit: 255,
                                type: .routerAdvertisement, body: advertisement(configuration, searchDomains: searchDomains),
                                configuration))
        default:
            return ip.destination.isMulticast ? .ignore : .drop(.noService)
        }
    }

    /// How long guests keep the gateway as default router and DNS server
    /// after an advertisement: 30 minutes, RFC 4861's default lifetime; a
    /// guest solicits again when it restarts.
    static let routerLifetime: UInt16 = 1800

    /// A router advertisement's body: hop limit 64, other configuration
    /// by DHCPv6 (its stateless DNS), addresses by DHCPv6 too ("managed")
    /// when it has a pool, the gateway as default router, then its link-layer
    /// address, the MTU, the /64 for on-link use and SLAAC (valid a day,
    /// preferred four hours), its address as DNS server, and the search
    /// domains, if there are any.
    static func advertisement(_ configuration: VirtualNetworkConfiguration, searchDomains: [DNSName] = []) -> [UInt8] {
        var options: [NDPOption] = [
            .sourceLinkLayer(configuration.gatewayMAC),
            .mtu(UInt32(configuration.mtu)),
            .prefix(configuration.ipv6Prefix.masked(prefixLength: 64), length: 64, onLink: true, autonomous: true,
                    validLifetime: 86_400, preferredLifetime: 14_400),
            .dnsServers([configuration.gatewayIPv6], lifetime: UInt32(routerLifetime)),
        ]
        if !searchDomains.isEmpty { options.append(.searchList(searchDomains, lifetime: UInt32(routerLifetime))) }
        return RouterAdvertisement(hopLimit: 64, routerLifetime: routerLifetime, managed: configuration.dhcpv6Pool != nil,
                                   otherConfiguration: true).body(options: options)
    }

    static func frame(to mac: MACAddress, from source: IPv6Address, to destination: IPv6Address, hopLimit: UInt8,
                      type: ICMPv6Type, body: [UInt8], _ configuration: VirtualNetworkConfiguration) -> [UInt8] {
        var out: [UInt8] = []
        EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: .ipv6).emit(into: &out)
        IPv6Header(source: source, destination: destination, nextHeader: .icmpv6, payloadLength: 4 + body.count,
                   hopLimit: hopLimit).emit(into: &out)
        ICMPv6View.emit(type: type, body: body, source: source, destination: destination, into: &out)
        return out
    }
}
