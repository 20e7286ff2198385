// The switch's and the gateway's IPv6. Sources first: a guest may send from
// the unspecified address only what a node without an address sends
// (duplicate address detection's solicitations, router solicitations,
// multicast listener reports), and otherwise only from a link-local
// address or one in the network's /64 that is its own (`IPv6Bindings`);
// a neighbour advertisement may only name such an address as its target,
// and the link-layer address in neighbour discovery options must be the
// frame's. Then the gateway: echo replies to its own requests are kept
// (`GatewayEcho`); other ICMPv6 for its addresses, its virtual ones
// (the host alias) and multicast goes to `GatewayIPv6` (echo requests to a
// virtual address excepted, which the NAT takes),
// UDP to its port 53 to the DNS resolver, and TCP and UDP to its addresses
// (its services, port forwards) and everything for addresses beyond the
// link to the NAT. Unicast for other addresses of the link is not routed.
import SovnetWire

extension VirtualNetwork {
    /// Why an IPv6 frame's source may not be used on `port`, if it may not.
    func checkSource(_ ip: IPv6View, _ upper: IPv6View.UpperLayer?, mac: MACAddress, port: PortID,
                     now: ContinuousClock.Instant) -> DropReason? {
        let neighborDiscovery = Self.neighborDiscovery(upper)
        if let message = neighborDiscovery, !Self.linkLayerOptionsName(mac, message) { return .spoofedAddress }
        if ip.source == .any {
            let type = neighborDiscovery?.type ?? Self.icmpv6Type(upper)
            let allowed: [ICMPv6Type] = [.neighborSolicitation, .routerSolicitation, .multicastListenerReportV2]
            return type.map(allowed.contains) == true ? nil : .spoofedAddress
        }
        guard mayUse(ip.source, mac: mac, port: port, now: now) else { return .spoofedAddress }
        if let message = neighborDiscovery, message.type == .neighborAdvertisement {
            guard let target = try? message.target(), mayUse(target, mac: mac, port: port, now: now) else {
                return .spoofedAddress
            }
        }
        return nil
    }

    /// Whether the guest on `port` may use `address`: a link-local one or
    /// one of the /64 that is not the gateway's, bound to it (`IPv6Bindings.claim`).
    private func mayUse(_ address: IPv6Address, mac: MACAddress, port: PortID, now: ContinuousClock.Instant) -> Bool {
        let onLink = address.isLinkLocal || address.masked(prefixLength: 64) == configuration.ipv6Prefix
        guard onLink, !configuration.isGatewayIPv6Address(address) else { return false }
        switch ipv6Bindings.claim(address, mac: mac, port: port, now: now) {
        case .held:
            return true
        case .bound(let from):
            noteBinding(.v6(address), link: GuestLink(port: port, mac: mac), from: from)
            return true
        case .refused:
            return false
        }
    }

    /// A neighbour discovery message (solicitations, advertisements), checksum unchecked.
    private static func neighborDiscovery(_ upper: IPv6View.UpperLayer?) -> ICMPv6View? {
        guard let upper, upper.protocol == .icmpv6, upper.fragment == nil,
              let message = try? ICMPv6View(upper.payload, source: nil, destination: nil) else { return nil }
        let types: [ICMPv6Type] = [.routerSolicitation, .neighborSolicitation, .neighborAdvertisement]
        return types.contains(message.type) ? message : nil
    }

    private static func icmpv6Type(_ upper: IPv6View.UpperLayer?) -> ICMPv6Type? {
        guard let upper, upper.protocol == .icmpv6, let type = upper.payload.first else { return nil }
        return ICMPv6Type(rawValue: type)
    }

    /// Whether every link-layer address option of `message` is `mac`.
    private static func linkLayerOptionsName(_ mac: MACAddress, _ message: ICMPv6View) -> Bool {
        guard let options = try? message.options() else { return false }
        return options.allSatisfy { option in
            switch option {
            case .sourceLinkLayer(let named), .targetLinkLayer(let named): named == mac
            default: true
            }
        }
    }

    /// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
    static let dhcpv6Servers = IPv6Address(high: 0xFF02 << 48, low: 0x1_0002)

    /// Whether a UDP datagram goes from a DHCPv6 client's port to a server's (546 to 547).
    private static func isDHCPv6ToServer(_ datagram: UnsafeRawBufferPointer) -> Bool {
        datagram.count >= 8 && datagram[0] == 2 && datagram[1] == 0x22 && datagram[2] == 2 && datagram[3] == 0x23
    }

    /// The DHCPv6 server's answer to a client's message, as a frame from
    /// the gateway's link-local address; nil when it gets none (a malformed
    /// message is counted).
    private func dhcpv6(_ ip: IPv6View, _ datagram: UnsafeRawBufferPointer, from mac: MACAddress, port: PortID,
                        now: ContinuousClock.Instant) -> [UInt8]? {
        guard let udp = try? UDPView(datagram, source: .v6(ip.source), destination: .v6(ip.destination)),
              let message = try? DHCPv6Message.parse(udp.payload) else {
            counters.drop(.malformedDHCP)
            return nil
        }
        let reply = dhcpv6.answer(message, from: port, now: now) { address in
            address.masked(prefixLength: 64) == configuration.ipv6Prefix && mayUse(address, mac: mac, port: port, now: now)
        }
        counters.dhcpv6[message.type.description, default: 0] += 1
        guard let reply else { return nil }
        var payload: [UInt8] = []
        reply.emit(into: &payload)
        var out: [UInt8] = []
        EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: .ipv6).emit(into: &out)
        IPv6Header(source: configuration.gatewayLinkLocal, destination: ip.source, nextHeader: .udp,
                   payloadLength: 8 + payload.count).emit(into: &out)
        UDPHeader(sourcePort: 547, destinationPort: 546).emit(payload: payload, source: .v6(configuration.gatewayLinkLocal),
                                                              destination: .v6(ip.source), into: &out)
        return out
    }

    /// An IPv6 packet the gateway takes: see the top of the file.
    func gatewayIPv6(_ ip: IPv6View, _ upper: IPv6View.UpperLayer?, _ ethernet: EthernetView, from port: PortID,
                     now: ContinuousClock.Instant,
                     into deliveries: inout [Delivery], nat: NATCore?, checksumTrusted: Bool) {
        func toNAT() {
            guard let nat else { return deliveries.append(.nat) }
            let link = GuestLink(port: port, mac: ethernet.source, offload: ports[port]?.offload ?? false)
            nat.receive(ip, upper: upper, from: link, checksumTrusted: checksumTrusted, now: now)
        }
        let destination = ip.destination
        let isOwn = destination == configuration.gatewayIPv6 || destination == configuration.gatewayLinkLocal
        let isAlias = configuration.ipv6VirtualAddresses.contains(destination)
        if isOwn, Self.icmpv6Type(upper) == .echoReply, let payload = upper?.payload,
           let reply = try? ICMPv6View(payload, source: ip.source, destination: destination), let echo = try? reply.echo(),
           keepEchoReply(from: .v6(ip.source), identifier: echo.identifier, sequence: echo.sequence, now: now) {
            return
        }
        if let upper, upper.protocol == .icmpv6,
           isOwn || destination.isMulticast || (isAlias && Self.icmpv6Type(upper) != .echoRequest) {
            switch GatewayIPv6.answer(ip, upper, from: ethernet.source, configuration,
                                      searchDomains: dhcp.configuration.searchDomains) {
            case .reply(let frame): deliveries.append(.send(frame, to: port))
            case .drop(let reason): counters.drop(reason)
            case .ignore: break
            }
            return
        }
        guard let upper else { return counters.drop(.malformedIPv6) }
        if upper.protocol == .udp, upper.fragment == nil, destination == Self.dhcpv6Servers || isOwn,
           Self.isDHCPv6ToServer(upper.payload) {
            if let reply = dhcpv6(ip, upper.payload, from: ethernet.source, port: port, now: now) {
                deliveries.append(.send(reply, to: port))
            }
            return
        }
        guard !destination.isMulticast, ethernet.destination == configuration.gatewayMAC else { return }
        if isOwn {
            switch upper.protocol {
            case .udp where upper.fragment == nil:
                guard let udp = try? UDPView(upper.payload, source: .v6(ip.source), destination: .v6(destination)) else {
                    return counters.drop(.badChecksum)
                }
                guard udp.destinationPort == 53 else { return toNAT() }
                let client = DNSClient(address: .v6(ip.source), port: udp.sourcePort, mac: ethernet.source, switchPort: port,
                                       server: .v6(destination))
                deliveries += deliver(dns.query(udp.payload, from: client, now: now))
            case .tcp:
                toNAT()
            case .udp:
                // The gateway's own services take no fragments; the NAT reassembles
                // them for flows that end at its address (a UDP port forward's answers).
                toNAT()
            default:
                counters.drop(.noService)
            }
            return
        }
        let onLink = destination.isLinkLocal || destination.masked(prefixLength: 64) == configuration.ipv6Prefix
        guard isAlias || !onLink else { return counters.drop(.noRoute) }
        toNAT()
    }
}
