// The virtual network behind `sovnet proxy`, sans I/O: an Ethernet switch
// whose ports are guest connections, with the gateway as one more station
// on it. The driver hands in each frame with the port it came from and
// performs the returned deliveries; the core owns no socket and no clock.
//
// Switching: the source MAC is learned on the port it arrives from (a group
// address as source, a MAC already held by another port, or a port's MAC
// beyond `maximumMACsPerPort`, is dropped); broadcast and multicast go to
// every other port and to the gateway; unicast goes to the port that owns
// the destination, or to the gateway for its MAC; unknown unicast is
// dropped. Guests reach each other at layer 2 only. Each port's broadcast
// and multicast go through a token bucket, so one guest's storm cannot flood
// the others.
//
// Addresses: a guest's IPv4 source address and ARP sender address must be
// bound to its port, whether the frame is for the gateway or switched to
// another guest, so no guest can answer ARP for the gateway or for another
// guest, nor send as one. Bound means a DHCP binding made on the port, a
// static binding of the frame's MAC, or a free address the port takes by
// using it (`DHCPServer.claim`, within its limit of bindings). The source
// 0.0.0.0 is allowed for DHCP to the server and for ARP probes only. When a
// binding moves to a new port (the same MAC back on a new connection), the
// change is kept for the driver (`takeBindingChanges`) so that the NAT's
// flows follow it. A binding moves when its MAC appears on a new port, or
// when a DHCP request from that MAC confirms it there.
//
// The gateway answers ARP for its own and the virtual addresses, ICMP echo
// to its own address, DHCP (`DHCPServer`) and DNS over UDP (`DNSResolver`,
// which may ask the driver to forward a query upstream); it also sends echo
// requests of its own for reachability checks (`GatewayEcho`). Every frame
// it refuses is counted under a `DropReason`.
import SovnetWire

/// A switch port: one guest connection.
public struct PortID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (a: PortID, b: PortID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "port \(rawValue)" }
}

/// A guest address whose binding is now on another port: a guest that came
/// back on a new connection (`from` its old port), or a free address a port
/// took by using it (`from` nil).
public struct BindingChange: Equatable, Sendable {
    public var address: IPAddress
    public var link: GuestLink
    public var from: PortID?
}

/// What the driver must do with a frame.
public enum Delivery: Equatable, Sendable {
    /// Send the frame that came in, unchanged, to these ports.
    case forward([PortID])
    /// Send this frame, made by the gateway, to a port.
    case send([UInt8], to: PortID)
    /// Send this DNS query to upstream resolver number `upstream`; hand the
    /// answer to `VirtualNetwork.upstreamDNSReply`.
    case resolve([UInt8], upstream: Int)
    /// The frame is an IPv4 packet for the NAT: to a host beyond the gateway,
    /// or TCP and UDP to the gateway's own address that it does not serve
    /// itself (port forwards, DNS over TCP, the forwarder API).
    case nat
}

/// The switch, the gateway's services and their counters.
public final class VirtualNetwork {
    public let configuration: VirtualNetworkConfiguration
    public private(set) var dhcp: DHCPServer
    public internal(set) var dns: DNSResolver
    public internal(set) var counters = NetworkCounters()
    /// Which port each source MAC was learned on.
    public private(set) var macTable: [MACAddress: PortID] = [:]
    /// How many MACs each port has in `macTable`.
    private var macCounts: [PortID: Int] = [:]
    /// Bindings that moved to a new port, until the driver takes them.
    private var bindingChanges: [BindingChange] = []

    /// IPv6 addresses bound to guest ports (`IPv6Bindings`).
    var ipv6Bindings: IPv6Bindings
    public internal(set) var dhcpv6: DHCPv6Server

    /// Where the guest using `address` is: for IPv4, the live port its
    /// binding is on (an expired one still says where the guest was), or
    /// the port of the MAC a static binding names; for IPv6, the live port
    /// its binding is on.
    public func neighbor(_ address: IPAddress) -> GuestLink? {
        switch address {
        case .v4(let address):
            return neighbor(address)
        case .v6(let address):
            guard let binding = ipv6Bindings[address], let record = ports[binding.port] else { return nil }
            return GuestLink(port: binding.port, mac: binding.mac, offload: record.offload)
        }
    }

    public func neighbor(_ address: IPv4Address) -> GuestLink? {
        if let lease = dhcp.holder(of: address), let record = ports[lease.port] {
            return GuestLink(port: lease.port, mac: lease.mac, offload: record.offload)
        }
        guard let mac = dhcp.staticOwner(of: address), let port = macTable[mac], let record = ports[port] else { return nil }
        return GuestLink(port: port, mac: mac, offload: record.offload)
    }

    /// The host's resolvers changed: `upstreamCount` of them now, and the
    /// search domains guests get with their next lease (nil: unchanged).
    public func hostResolversChanged(upstreamCount: Int, searchDomains: [DNSName]?) {
        dns.setUpstreamCount(upstreamCount)
        if let searchDomains {
            dhcp.configuration.searchDomains = searchDomains
            dhcpv6.configuration.searchDomains = searchDomains
        }
    }

    /// A MAC learned on `port`, or nil while none is (one look-up then).
    public func learnedMAC(on port: PortID) -> MACAddress? {
        guard macCounts[port] != nil else { return nil }
        return macTable.first { $0.value == port }?.key
    }

    /// What the DHCP server did that an operator wants to see, and on which
    /// port: leases granted or renewed, releases, declines and NAKs.
    public struct LeaseEvent: Equatable, Sendable {
        public var event: DHCPServerEvent
        public var port: PortID
    }

    /// The lease events since the last call (at most `maximumLeaseEvents`
    /// wait; more are counted in `/stats` only).
    public func takeLeaseEvents() -> [LeaseEvent] {
        guard !leaseEvents.isEmpty else { return [] }
        defer { leaseEvents.removeAll() }
        return leaseEvents
    }

    private var leaseEvents: [LeaseEvent] = []
    static let maximumLeaseEvents = 256

    /// What the DHCPv6 server did since the last call.
    public func takeDHCPv6Events() -> [DHCPv6ServerEvent] {
        dhcpv6.takeEvents()
    }

    /// The bindings that moved to another port since the last call.
    public func takeBindingChanges() -> [BindingChange] {
        guard !bindingChanges.isEmpty || dhcp.hasMoves else { return [] }
        defer { bindingChanges.removeAll() }
        return bindingChanges + dhcp.takeMoves().map {
            BindingChange(address: .v4($0.lease.address), link: GuestLink(port: $0.lease.port, mac: $0.lease.mac), from: $0.from)
        }
    }

    /// Notes that `address` is bound to `link`'s port now (`takeBindingChanges`).
    func noteBinding(_ address: IPAddress, link: GuestLink, from: PortID?) {
        guard bindingChanges.count < Self.maximumLeaseEvents else { return }
        bindingChanges.append(BindingChange(address: address, link: link, from: from))
    }
    /// The ports of the switch, each with its link's record; the NAT reads them.
    public let ports = GuestPorts()
    /// Broadcast allowance per port: tokens left and when they were counted.
    private var broadcastTokens: [PortID: (tokens: Double, at: ContinuousClock.Instant)] = [:]
    private var nextPort = 0
    /// Where DNS answers are built, fragmented if need be.
    private let answerFrames: GuestFrames
    private var ipIdentification: UInt16 = 0
    /// Identifiers of the gateway's own echo requests, whose replies are kept (`GatewayEcho`).
    var echoIdentifiers: Set<UInt16> = []
    /// Replies to the gateway's echo requests, until the driver takes them.
    var echoReplies: [GatewayEchoReply] = []

    public init(configuration: VirtualNetworkConfiguration) {
        self.configuration = configuration
        dhcp = DHCPServer(configuration: configuration.dhcp)
        answerFrames = GuestFrames(gatewayMAC: configuration.gatewayMAC, mtu: configuration.mtu, capacity: 0)
        ipv6Bindings = IPv6Bindings(maximumPerPort: configuration.maximumIPv6AddressesPerPort)
        dhcpv6 = DHCPv6Server(configuration: configuration.dhcpv6)
        let local = DNSResolver.defaultRecords(gateway: [.v4(configuration.gatewayAddress), .v6(configuration.gatewayIPv6)],
                                               host: [.v4(configuration.hostAddress), .v6(configuration.ipv6HostAddress)])
        dns = DNSResolver(zones: local.zones, records: local.records,
                          upstreamCount: configuration.upstreamResolverCount,
                          seed: UInt64(truncatingIfNeeded: ContinuousClock.now.hashValue))
        dns.maximumPending = configuration.maximumPendingQueries
        dns.maximumPendingPerPort = configuration.maximumPendingQueriesPerPort
        for zone in configuration.dnsZones { dns.add(zone) }
    }

    /// Adds a local DNS zone (from the control API).
    public func addDNSZone(_ zone: DNSZoneConfiguration) {
        dns.add(zone)
    }

    /// Decides a DNS query that came over TCP (see `DNSResolver.decide`).
    public func decideDNS(_ query: UnsafeRawBufferPointer) -> DNSResolver.Decision {
        dns.decide(query)
    }

    /// SERVFAIL for a DNS query over TCP that no upstream answered, or that
    /// found too many waiting (`counter` "servfail-limit").
    public func dnsServerFailure(for query: UnsafeRawBufferPointer, counter: String = "servfail") -> [UInt8]? {
        dns.serverFailure(for: query, counter: counter)
    }

    /// When `tick` must next run.
    public var nextDeadline: ContinuousClock.Instant? { dns.nextDeadline }

    /// Runs the timers due at `now` (DNS retries and SERVFAIL answers).
    public func tick(now: ContinuousClock.Instant) -> [Delivery] {
        counted(deliver(dns.tick(now: now)))
    }

    /// Hands over an answer from upstream resolver number `upstream`.
    public func upstreamDNSReply(_ bytes: UnsafeRawBufferPointer, from upstream: Int) -> [Delivery] {
        counted(deliver(dns.upstreamReply(bytes, from: upstream)))
    }

    private func counted(_ deliveries: [Delivery]) -> [Delivery] {
        for case .send(let bytes, let target) in deliveries { count(out: bytes.count, to: target) }
        return deliveries
    }

    /// The IPv4 identification for the gateway's next packet.
    func nextIdentification() -> UInt16 {
        ipIdentification &+= 1
        return ipIdentification
    }

    /// A new port for a guest that connected.
    public func attach() -> PortID {
        nextPort += 1
        let port = PortID(nextPort)
        ports.insert(port)
        counters.ports[port.rawValue] = PortCounters()
        return port
    }

    /// Forgets a port and the MACs learned on it, and folds its counters
    /// into those of departed ports; DHCP bindings stay, so a guest that
    /// reconnects gets its address back.
    public func detach(_ port: PortID, now: ContinuousClock.Instant) {
        guard ports.remove(port) else { return }
        broadcastTokens[port] = nil
        if macCounts.removeValue(forKey: port) != nil { macTable = macTable.filter { $0.value != port } }
        dhcp.detach(port, now: now)
        ipv6Bindings.portLeft(port)
        if let departed = counters.ports.removeValue(forKey: port.rawValue) {
            counters.departedPorts.add(departed)
            counters.departedPortCount += 1
        }
    }

    /// Detaches a port that never was a guest's (a control API connection) and drops its counters.
    public func forget(_ port: PortID, now: ContinuousClock.Instant) {
        counters.ports[port.rawValue] = nil
        detach(port, now: now)
    }

    /// Handles a frame that arrived on `port`.
    public func receive(_ frame: UnsafeRawBufferPointer, from port: PortID, now: ContinuousClock.Instant) -> [Delivery] {
        var deliveries: [Delivery] = []
        receive(frame, from: port, now: now, into: &deliveries)
        return deliveries
    }

    /// Handles a frame that arrived on `port`, appending what to do to
    /// `deliveries`: the driver's loop passes one array it clears, so a frame
    /// for the NAT costs no allocation.
    ///
    /// With `nat`, packets for it are handed to it as parsed here, and
    /// `checksumTrusted` says their TCP checksum was left to complete by a
    /// kernel on this host (an offloading guest's); without it, a `.nat`
    /// delivery says the frame is for the caller's NAT.
    public func receive(_ frame: UnsafeRawBufferPointer, from port: PortID, now: ContinuousClock.Instant,
                        into deliveries: inout [Delivery], nat: NATCore? = nil, checksumTrusted: Bool = false) {
        counters.ports[port.rawValue, default: PortCounters()].framesIn += 1
        counters.ports[port.rawValue, default: PortCounters()].bytesIn += frame.count
        guard let ethernet = try? EthernetView(frame) else {
            counters.drop(.malformedFrame)
            return
        }
        let source = ethernet.source
        guard !source.isMulticast else {
            counters.drop(.multicastSource)
            return
        }
        if let owner = macTable[source], owner != port, ports.contains(owner) {
            counters.drop(.spoofedSource)
            return
        }
        if macTable[source] != port {
            guard macCounts[port, default: 0] < configuration.maximumMACsPerPort else {
                counters.drop(.macLimit)
                return
            }
            if let previous = macTable.updateValue(port, forKey: source), let count = macCounts[previous] {
                macCounts[previous] = count > 1 ? count - 1 : nil
            }
            macCounts[port, default: 0] += 1
            dhcp.takeBack(mac: source, to: port)
        }
        // IPv4, IPv6 (to its upper layer) and ARP are parsed once, here, for the checks, the switch, the gateway and the NAT.
        var ip: IPv4View?
        var ipv6: IPv6View?
        var ipv6Upper: IPv6View.UpperLayer?
        var arp: ARPPacket?
        switch ethernet.etherType {
        case .ipv4:
            ip = try? IPv4View(ethernet.payload, verifyChecksum: false)
            if ip == nil { return counters.drop(.malformedIPv4) }
        case .ipv6:
            // One that does not parse is still switched, as any EtherType the gateway does not speak.
            ipv6 = try? IPv6View(ethernet.payload)
            ipv6Upper = ipv6.flatMap { try? $0.upperLayer() }
            if let ipv6Upper, GatewayIPv6.isRouterMessage(ipv6Upper) { return counters.drop(.guestRouterMessage) }
        case .arp:
            arp = try? ARPPacket.parse(ethernet.payload)
            if arp == nil { return counters.drop(.malformedARP) }
        default:
            break
        }
        if let refusal = checkSource(ethernet, ip: ip, ipv6: ipv6, ipv6Upper: ipv6Upper, arp: arp, port: port, now: now) {
            counters.drop(refusal)
            return
        }
        let destination = ethernet.destination
        if destination.isMulticast, !takeBroadcastToken(port, now: now) {
            counters.drop(.broadcastStorm)
            return
        }
        let first = deliveries.count
        if destination.isMulticast {
            let others = ports.records.keys.filter { $0 != port }.sorted()
            if !others.isEmpty { deliveries.append(.forward(others)) }
            gateway(ethernet, ip: ip, ipv6: ipv6, ipv6Upper: ipv6Upper, arp: arp, from: port, now: now, into: &deliveries, nat: nat,
                    checksumTrusted: checksumTrusted)
        } else if destination == configuration.gatewayMAC {
            gateway(ethernet, ip: ip, ipv6: ipv6, ipv6Upper: ipv6Upper, arp: arp, from: port, now: now, into: &deliveries, nat: nat,
                    checksumTrusted: checksumTrusted)
        } else if let owner = macTable[destination], ports.contains(owner) {
            if owner != port { deliveries.append(.forward([owner])) }
        } else {
            counters.drop(.unknownUnicast)
        }
        for delivery in deliveries[first...] {
            switch delivery {
            case .forward(let targets):
                for target in targets { count(out: frame.count, to: target) }
            case .send(let bytes, let target):
                count(out: bytes.count, to: target)
            case .resolve, .nat:
                break
            }
        }
    }

    private var subnetBroadcast: IPv4Address {
        IPv4Address(rawValue: configuration.network.rawValue | ~IPv4Address.mask(prefixLength: configuration.prefixLength).rawValue)
    }

    private func isInSubnet(_ address: IPv4Address) -> Bool {
        address.masked(prefixLength: configuration.prefixLength) == configuration.network
    }

    /// Why a frame's IPv4 source or ARP sender may not be used on `port`, if
    /// it may not (see the top of the file); nil for other EtherTypes.
    private func checkSource(_ ethernet: EthernetView, ip: IPv4View?, ipv6: IPv6View?, ipv6Upper: IPv6View.UpperLayer?,
                             arp: ARPPacket?, port: PortID,
                             now: ContinuousClock.Instant) -> DropReason? {
        if let ipv6 { return checkSource(ipv6, ipv6Upper, mac: ethernet.source, port: port, now: now) }
        if let ip {
            if ip.source == .any { return Self.isDHCPToServer(ip) ? nil : .spoofedAddress }
            return mayUse(ip.source, mac: ethernet.source, port: port, now: now) ? nil : .spoofedAddress
        }
        if let arp {
            guard arp.senderMAC == ethernet.source else { return .spoofedAddress }
            if arp.senderIP == .any { return nil }
            return mayUse(arp.senderIP, mac: ethernet.source, port: port, now: now) ? nil : .spoofedAddress
        }
        return nil
    }

    /// A DHCP client's message to the server (UDP to port 67), the one thing
    /// a guest without an address may send.
    private static func isDHCPToServer(_ ip: IPv4View) -> Bool {
        let udp = ip.payload
        return ip.protocol == .udp && !ip.isFragment && udp.count >= 8 && udp[2] == 0 && udp[3] == 67
    }

    /// Whether the guest on `port` may send from `address` with `mac`,
    /// binding a free address to it (`DHCPServer.claim`).
    private func mayUse(_ address: IPv4Address, mac: MACAddress, port: PortID, now: ContinuousClock.Instant) -> Bool {
        guard isInSubnet(address), address != configuration.gatewayAddress, address != subnetBroadcast,
              !configuration.virtualAddresses.contains(address), address != configuration.network else { return false }
        switch dhcp.claim(address, mac: mac, port: port, now: now) {
        case .held, .returned:
            return true
        case .taken:
            noteBinding(.v4(address), link: GuestLink(port: port, mac: mac), from: nil)
            return true
        case .refused:
            return false
        }
    }

    /// Token bucket: refills at `broadcastRate` per second up to `broadcastBurst`.
    private func takeBroadcastToken(_ port: PortID, now: ContinuousClock.Instant) -> Bool {
        let burst = Double(configuration.broadcastBurst)
        var (tokens, at) = broadcastTokens[port] ?? (burst, now)
        let elapsed = now - at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(burst, tokens + max(0, seconds) * Double(configuration.broadcastRate))
        let allowed = tokens >= 1
        broadcastTokens[port] = (allowed ? tokens - 1 : tokens, now)
        return allowed
    }

    /// Counts a frame the driver dropped (one too long for its target port, say).
    public func countDrop(_ reason: DropReason) {
        counters.drop(reason)
    }

    /// Counts frames the NAT sent to a port.
    public func countDelivered(to port: PortID, frames: Int, bytes: Int) {
        guard ports.contains(port) else { return }
        counters.ports[port.rawValue, default: PortCounters()].framesOut += frames
        counters.ports[port.rawValue, default: PortCounters()].bytesOut += bytes
    }

    func count(out bytes: Int, to port: PortID) {
        guard ports.contains(port) else { return }
        counters.ports[port.rawValue, default: PortCounters()].framesOut += 1
        counters.ports[port.rawValue, default: PortCounters()].bytesOut += bytes
    }

    // MARK: The gateway

    private func gateway(_ ethernet: EthernetView, ip: IPv4View?, ipv6: IPv6View?, ipv6Upper: IPv6View.UpperLayer?,
                         arp request: ARPPacket?, from port: PortID,
                         now: ContinuousClock.Instant, into deliveries: inout [Delivery], nat: NATCore?,
                         checksumTrusted: Bool) {
        if let request {
            deliveries += arp(request, ethernet, from: port)
        } else if let ip {
            ipv4(ip, ethernet, from: port, now: now, into: &deliveries, nat: nat, checksumTrusted: checksumTrusted)
        } else if ethernet.etherType == .ipv6, configuration.ipv6 {
            guard let ipv6 else { return counters.drop(.malformedIPv6) }
            gatewayIPv6(ipv6, ipv6Upper, ethernet, from: port, now: now, into: &deliveries, nat: nat, checksumTrusted: checksumTrusted)
        } else if ethernet.destination == configuration.gatewayMAC {
            // Multicast of other kinds was switched already; the gateway does not speak them.
            counters.drop(.unknownEtherType)
        }
    }

    private func arp(_ request: ARPPacket, _ ethernet: EthernetView, from port: PortID) -> [Delivery] {
        let owned = request.targetIP == configuration.gatewayAddress
            || configuration.virtualAddresses.contains(request.targetIP)
        guard request.operation == .request, owned, !request.isGratuitous else {
            if ethernet.destination == configuration.gatewayMAC { counters.drop(.arpNotForUs) }
            return []
        }
        var out: [UInt8] = []
        out.reserveCapacity(EthernetView.minimumFrameLength)
        EthernetHeader(destination: request.senderMAC, source: configuration.gatewayMAC, etherType: .arp).emit(into: &out)
        ARPPacket(operation: .reply, senderMAC: configuration.gatewayMAC, senderIP: request.targetIP,
                  targetMAC: request.senderMAC, targetIP: request.senderIP).emit(into: &out)
        counters.arpReplies += 1
        return [.send(out, to: port)]
    }

    /// An IPv4 packet for the gateway (parsed, its header checksum not yet checked).
    private func ipv4(_ ip: IPv4View, _ ethernet: EthernetView, from port: PortID, now: ContinuousClock.Instant,
                      into deliveries: inout [Delivery], nat: NATCore?, checksumTrusted: Bool) {
        /// Hands the packet to the NAT, or marks it for the caller's.
        func toNAT() {
            guard let nat else { return deliveries.append(.nat) }
            let link = GuestLink(port: port, mac: ethernet.source, offload: ports[port]?.offload ?? false)
            nat.receive(ip, from: link, checksumTrusted: checksumTrusted, now: now)
        }
        guard InternetChecksum.of(UnsafeRawBufferPointer(rebasing: ip.bytes[..<ip.headerLength])) == 0 else {
            counters.drop(.badChecksum)
            return
        }
        let forGateway = ip.destination == configuration.gatewayAddress
        let isBroadcast = ip.destination == .broadcast || ip.destination == subnetBroadcast
        if !forGateway, !isBroadcast {
            guard !ethernet.destination.isMulticast else { return }
            guard !isInSubnet(ip.destination) || configuration.virtualAddresses.contains(ip.destination) else {
                counters.drop(.noRoute)
                return
            }
            toNAT()
            return
        }
        if ip.headerLength != IPv4View.minimumHeaderLength {
            counters.drop(.ipOptions)
            return
        }
        if ip.isFragment {
            // The gateway's own services take no fragments; the NAT reassembles
            // them for flows that end at its address (a UDP port forward's answers).
            if forGateway, ip.protocol == .udp {
                toNAT()
                return
            }
            counters.drop(.fragment)
            return
        }
        switch ip.protocol {
        case .icmp where forGateway:
            deliveries += echo(ip, to: ethernet.source, port: port, now: now)
        case .udp:
            guard let udp = try? UDPView(ip.payload, source: ip.source, destination: ip.destination) else {
                counters.drop(.badChecksum)
                return
            }
            if udp.destinationPort == 67 {
                deliveries += dhcpRequest(udp, port: port, now: now)
                return
            }
            if udp.destinationPort == 53, forGateway {
                let client = DNSClient(address: .v4(ip.source), port: udp.sourcePort, mac: ethernet.source, switchPort: port,
                                       server: .v4(ip.destination))
                deliveries += deliver(dns.query(udp.payload, from: client, now: now))
                return
            }
            if forGateway { toNAT() }
        case .tcp where forGateway:
            toNAT()
        default:
            if forGateway { counters.drop(.noService) }
            return
        }
    }

    private func echo(_ ip: IPv4View, to mac: MACAddress, port: PortID, now: ContinuousClock.Instant) -> [Delivery] {
        guard let icmp = try? ICMPv4View(ip.payload) else {
            counters.drop(.malformedICMP)
            return []
        }
        if icmp.type == .echoReply,
           keepEchoReply(from: .v4(ip.source), identifier: icmp.identifier, sequence: icmp.sequence, now: now) {
            return []
        }
        guard icmp.type == .echoRequest else {
            counters.drop(.noService)
            return []
        }
        let reply = ICMPv4Header(type: .echoReply, code: 0, restOfHeader: icmp.restOfHeader)
        var out: [UInt8] = []
        out.reserveCapacity(14 + ip.totalLength)
        EthernetHeader(destination: mac, source: configuration.gatewayMAC, etherType: .ipv4).emit(into: &out)
        IPv4Header(source: configuration.gatewayAddress, destination: ip.source, protocol: .icmp,
                   payloadLength: ip.payload.count, ttl: 64, identification: nextIdentification()).emit(into: &out)
        reply.emit(body: icmp.body, into: &out)
        counters.echoReplies += 1
        return [.send(out, to: port)]
    }

    /// Turns the resolver's actions into deliveries: answers in UDP frames
    /// from the gateway's port 53 (in fragments when longer than the MTU, as
    /// an EDNS answer may be), queries for the driver to forward.
    func deliver(_ actions: [DNSResolverAction]) -> [Delivery] {
        actions.flatMap { action -> [Delivery] in
            switch action {
            case .forward(let query, let upstream):
                return [.resolve(query, upstream: upstream)]
            case .answer(let payload, let client):
                answerFrames.removeAll()
                payload.withUnsafeBytes {
                    answerFrames.appendUDP(GuestLink(port: client.switchPort, mac: client.mac),
                                           source: client.server, sourcePort: 53,
                                           destination: client.address, destinationPort: client.port, payload: $0)
                }
                return answerFrames.frames.map { .send(Array(answerFrames.storage[$0.range]), to: $0.port) }
            }
        }
    }

    private func dhcpRequest(_ udp: UDPView, port: PortID, now: ContinuousClock.Instant) -> [Delivery] {
        guard let request = try? DHCPMessage.parse(udp.payload) else {
            counters.drop(.malformedDHCP)
            return []
        }
        let (reply, event) = dhcp.handle(request, from: port, now: now)
        counters.dhcp[Self.counterName(event), default: 0] += 1
        switch event {
        case .acknowledged, .released, .declined, .nak:
            if leaseEvents.count < Self.maximumLeaseEvents { leaseEvents.append(LeaseEvent(event: event, port: port)) }
        case .offered, .informed, .ignored:
            break
        }
        guard let reply, let clientMAC = request.clientMAC else {
            if case .ignored = event { counters.drop(.dhcpIgnored) }
            return []
        }
        // RFC 2131 §4.1: to ciaddr if set; broadcast for a NAK or when asked; else unicast to yiaddr.
        let toCiaddr = request.clientAddress != .any && reply.messageType != .nak
        let broadcast = !toCiaddr && (reply.messageType == .nak || request.broadcast || reply.yourAddress == .any)
        let ipDestination = toCiaddr ? request.clientAddress : broadcast ? IPv4Address.broadcast : reply.yourAddress
        let macDestination = broadcast ? MACAddress.broadcast : clientMAC
        guard let payload = try? reply.bytes() else { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(14 + 28 + payload.count)
        EthernetHeader(destination: macDestination, source: configuration.gatewayMAC, etherType: .ipv4).emit(into: &out)
        IPv4Header(source: configuration.gatewayAddress, destination: ipDestination, protocol: .udp,
                   payloadLength: 8 + payload.count, ttl: 64, identification: nextIdentification()).emit(into: &out)
        UDPHeader(sourcePort: 67, destinationPort: 68).emit(payload: payload, source: configuration.gatewayAddress,
                                                            destination: ipDestination, into: &out)
        return [.send(out, to: port)]
    }

    private static func counterName(_ event: DHCPServerEvent) -> String {
        switch event {
        case .offered: "offers"
        case .acknowledged: "acks"
        case .informed: "informs"
        case .nak: "naks"
        case .released: "releases"
        case .declined: "declines"
        case .ignored: "ignored"
        }
    }
}
