// The NAT behind the gateway, free of I/O: guest packets for addresses
// beyond the gateway become traffic on host sockets, and host port forwards
// become traffic into guests. Events come in (a guest's IPv4 frame, a host
// socket's readiness or datagram, a connection a forward accepted, the
// clock); what the core decides goes out as frames for guests (`frames`,
// sent by the driver after each batch) and as commands to its `NATHost`
// (open, send, close). The driver keeps only the sockets and their epoll
// tokens.
//
// Per frame: the IP header is checked (IPv4 packets with options are dropped
// and counted, IPv4 fragments are reassembled first; IPv6 extension headers
// are walked, IPv6 fragments are reassembled too), the destination is
// decided by the `NATPolicy` (translated, as asked, or refused and counted),
// and the packet goes to the TCP, UDP or echo table. Both families share
// the tables: a flow's key holds its guest's addresses, and its host socket
// is of the family of the address the policy chose. TCP to the gateway's
// own addresses is its DNS (53) and forwarder API (80), served by the host
// over a connected pair; other traffic to them reaches only flows that
// already exist there, which are the port forwards'. New flows of every
// protocol pass one `FlowAdmission`.
import SovnetWire

/// What the NAT core decides by; gvproxy's defaults.
public struct NATSettings: Sendable {
    public var policy = NATPolicy()
    /// Flows of each protocol at once; past it a new TCP flow gets an RST and
    /// other new flows are dropped (`flow-limit`).
    public var maximumFlows = 16_384
    /// Flows of each protocol one guest (switch port) may open; past it, as
    /// past `maximumFlows`, but counted as `guest-flow-limit`.
    public var maximumFlowsPerGuest = 4096
    /// Flows of all protocols together: what the host's descriptors can carry.
    public var maximumTotalFlows = Int.max
    /// How long a UDP or ICMP flow lives without traffic.
    public var idleTimeout: Duration = .seconds(60)
    /// Whether the gateway's port 80 serves the forwarder API to guests.
    public var guestAPI = true

    public init() {}
}

/// What `/stats` shows of the NAT.
public struct NATStatistics: Sendable, Codable, Equatable {
    public var tcp = TrafficCounters()
    public var udp = TrafficCounters()
    public var icmp = TrafficCounters()
    /// TCP flows by state (RFC 9293 names).
    public var tcpStates: [String: Int] = [:]
    public var tcpFlowsOpened = 0
    public var tcpRetransmissions = 0
    public var udpFlows = 0
    public var icmpFlows = 0
    public var flowLimitHits = 0
    public var drops: [String: Int] = [:]

    public init() {}
}

/// The NAT's decisions, driven by events from guests, host sockets and the clock.
public final class NATCore {
    /// Frames for guests, gathered until the driver sends them.
    public let frames: GuestFrames
    public let settings: NATSettings
    private let tcp: TCPFlowTable
    private let udp: UDPFlowTable
    private let echo: EchoFlowTable
    private let admission: FlowAdmission
    private unowned let host: NATHost
    private let gatewayAddress: IPv4Address
    /// The gateway's IPv6 addresses: in the guests' prefix, and link-local.
    private let gatewayIPv6: IPv6Address
    private let gatewayLinkLocal: IPv6Address
    /// Where a guest address is on the switch now, or nil when no guest has it.
    private let neighbor: (IPAddress) -> GuestLink?
    private var drops: [DropReason: Int] = [:]
    private var reassembler = IPv4Reassembler()
    private var reassemblerIPv6 = IPv6Reassembler()
    private var nextForwardPort: UInt16 = 32768
    /// How often timers run while any flow exists.
    private static let tickInterval: Duration = .milliseconds(100)
    private var lastTick = ContinuousClock.now

    /// - Parameters:
    ///   - ports: the switch's ports (`VirtualNetwork.ports`), whose backlogs hold flows back.
    ///   - host: carries out the core's socket commands; the caller keeps it alive.
    ///   - neighbor: where a guest address is on the switch (the virtual network's bindings).
    public init(settings: NATSettings, network: VirtualNetworkConfiguration, ports: GuestPorts = GuestPorts(), host: NATHost,
                frameCapacity: Int = 256 * 1024, neighbor: @escaping (IPAddress) -> GuestLink?) {
        self.settings = settings
        self.host = host
        self.neighbor = neighbor
        gatewayAddress = network.gatewayAddress
        gatewayIPv6 = network.gatewayIPv6
        gatewayLinkLocal = network.gatewayLinkLocal
        frames = GuestFrames(gatewayMAC: network.gatewayMAC, mtu: network.mtu, capacity: frameCapacity)
        let ids = FlowIDSource()
        admission = FlowAdmission(maximumFlows: settings.maximumFlows, maximumFlowsPerGuest: settings.maximumFlowsPerGuest,
                                  maximumTotal: settings.maximumTotalFlows)
        tcp = TCPFlowTable(context: TCPContext(settings: TCPSettings(mtu: network.mtu), frames: frames, ports: ports),
                           host: host, ids: ids, admission: admission)
        let datagrams = DatagramFlowContext(frames: frames, host: host, ids: ids, admission: admission,
                                            idleTimeout: settings.idleTimeout)
        udp = UDPFlowTable(datagrams)
        echo = EchoFlowTable(datagrams)
    }

    private func drop(_ reason: DropReason) {
        drops[reason, default: 0] += 1
    }

    // MARK: From guests

    /// An IPv4 frame from `port` that the virtual network marked for the NAT
    /// (a `.nat` delivery): parsed here, then as `receive(_:from:checksumTrusted:now:)`.
    public func receive(_ frame: UnsafeRawBufferPointer, from port: PortID, offload: Bool = false,
                        checksumTrusted: Bool = false, now: ContinuousClock.Instant) {
        guard let ethernet = try? EthernetView(frame), let ip = try? IPv4View(ethernet.payload) else {
            drop(.malformedIPv4)
            return
        }
        receive(ip, from: GuestLink(port: port, mac: ethernet.source, offload: offload), checksumTrusted: checksumTrusted,
                now: now)
    }

    /// An IPv4 packet from the guest at `link`, its header checked by the
    /// virtual network. On an offloading link a TCP segment may be a
    /// superframe, and `checksumTrusted` says its checksum was left to
    /// complete by a kernel on this host, as a NIC's checksum offload would:
    /// it is not summed. Fragments are reassembled first.
    public func receive(_ ip: IPv4View, from link: GuestLink, checksumTrusted: Bool = false, now: ContinuousClock.Instant) {
        guard ip.isFragment else { return receive(ip, link: link, checksumTrusted: checksumTrusted, now: now) }
        switch reassembler.add(ip, now: now) {
        case .incomplete:
            break
        case .complete(let packet):
            packet.withUnsafeBytes { bytes in
                guard let whole = try? IPv4View(bytes) else { return drop(.fragment) }
                receive(whole, link: link, now: now)
            }
        case .dropped(let reason):
            host.report(.fragmentDropped(source: .v4(ip.source), reason: reason))
            drop(.fragment)
        }
    }

    /// A whole IPv4 packet from a guest: to its flow table, or dropped.
    private func receive(_ ip: IPv4View, link: GuestLink, checksumTrusted: Bool = false, now: ContinuousClock.Instant) {
        if ip.headerLength != IPv4View.minimumHeaderLength { return drop(.ipOptions) }
        var target: IPAddress?
        if ip.destination != gatewayAddress {
            switch settings.policy.decide(.v4(ip.destination), transport: ip.protocol,
                                          hostAddresses: host.hostAddresses(now: now)) {
            case .host(let address): target = address
            case .refuse(let reason): return drop(reason)
            }
        }
        receive(IPPacket(ip), link: link, target: target, checksumTrusted: checksumTrusted, now: now)
    }

    /// An IPv6 packet from the guest at `link` that the virtual network
    /// marked for the NAT: to an address beyond the link, or to the
    /// gateway's own addresses; `upper` is its upper layer as the caller
    /// found it (nil: found here, or malformed). As for IPv4,
    /// `checksumTrusted` says a TCP checksum was left to complete by a
    /// kernel on this host.
    public func receive(_ ip: IPv6View, upper: IPv6View.UpperLayer? = nil, from link: GuestLink, checksumTrusted: Bool = false,
                        now: ContinuousClock.Instant) {
        guard let upper = upper ?? (try? ip.upperLayer()) else { return drop(.malformedIPv6) }
        if let fragment = upper.fragment, fragment.offset != 0 || fragment.moreFragments {
            switch reassemblerIPv6.add(ip, fragment, now: now) {
            case .incomplete:
                break
            case .complete(let packet):
                packet.withUnsafeBytes { bytes in
                    guard let whole = try? IPv6View(bytes) else { return drop(.fragment) }
                    receive(whole, from: link, now: now)
                }
            case .dropped(let reason):
                host.report(.fragmentDropped(source: .v6(ip.source), reason: reason))
                drop(.fragment)
            }
            return
        }
        var target: IPAddress?
        if ip.destination != gatewayIPv6, ip.destination != gatewayLinkLocal {
            switch settings.policy.decide(.v6(ip.destination), transport: upper.protocol,
                                          hostAddresses: host.hostAddresses(now: now)) {
            case .host(let address): target = address
            case .refuse(let reason): return drop(reason)
            }
        }
        receive(IPPacket(ip, upper), link: link, target: target, checksumTrusted: checksumTrusted, now: now)
    }

    /// A whole packet to its flow table; `target` is where a new flow goes
    /// on the host (nil: the packet is for the gateway itself).
    private func receive(_ packet: IPPacket, link: GuestLink, target: IPAddress?, checksumTrusted: Bool,
                         now: ContinuousClock.Instant) {
        switch packet.protocol {
        case .tcp:
            let parsed = checksumTrusted ? try? TCPView(packet.transport)
                : try? TCPView(packet.transport, source: packet.source, destination: packet.destination)
            guard let segment = parsed else { return drop(.badChecksum) }
            let key = FlowKey(guest: packet.source, guestPort: segment.sourcePort, remote: packet.destination,
                              remotePort: segment.destinationPort)
            if target == nil, tcp.isFree(key), segment.flags.contains(.syn), !segment.flags.contains(.ack),
               let service = GatewayService(port: segment.destinationPort),
               service != .forwarderAPI || settings.guestAPI {
                if let reason = tcp.openService(service, segment, key: key, link: link, now: now) { drop(reason) }
                return
            }
            if let reason = tcp.receive(segment, key: key, link: link, target: target.map { ($0, segment.destinationPort) },
                                        now: now) {
                drop(reason)
            }
        case .udp:
            guard let datagram = try? UDPView(packet.transport, source: packet.source, destination: packet.destination) else {
                return drop(.badChecksum)
            }
            let key = FlowKey(guest: packet.source, guestPort: datagram.sourcePort, remote: packet.destination,
                              remotePort: datagram.destinationPort)
            if let reason = udp.send(datagram, quote: packet.quote, key: key, link: link,
                                     target: target.map { ($0, datagram.destinationPort) }, now: now) {
                drop(reason)
            }
        case .icmp where !packet.source.isIPv6:
            guard let message = try? ICMPv4View(packet.transport) else { return drop(.malformedICMP) }
            guard message.type == .echoRequest, let target else { return drop(.noService) }
            if let reason = echo.send(message.bytes, identifier: message.identifier, quote: packet.quote, from: packet.source,
                                      to: packet.destination, link: link, target: target, now: now) {
                drop(reason)
            }
        case .icmpv6 where packet.source.isIPv6:
            guard let message = try? ICMPv6View(packet.transport, source: packet.source.asIPv6,
                                                destination: packet.destination.asIPv6) else { return drop(.malformedICMP) }
            guard message.type == .echoRequest, let request = try? message.echo(), let target else { return drop(.noService) }
            if let reason = echo.send(message.bytes, identifier: request.identifier, quote: packet.quote, from: packet.source,
                                      to: packet.destination, link: link, target: target, now: now) {
                drop(reason)
            }
        default:
            drop(.noService)
        }
    }

    // MARK: From the host

    /// A TCP flow's host socket is ready: a connect ended, bytes (or the end
    /// of the stream, or an error) arrived, or room opened to write.
    public func hostSocketReady(_ id: FlowID, readable: Bool, writable: Bool, now: ContinuousClock.Instant) {
        tcp.hostSocketReady(id, readable: readable, writable: writable, now: now)
    }

    /// A datagram that arrived on a UDP flow's socket.
    public func receiveDatagram(_ payload: UnsafeRawBufferPointer, on id: FlowID, now: ContinuousClock.Instant) {
        udp.receive(payload, on: id, now: now)
    }

    /// A UDP flow's socket reported port unreachable (ECONNREFUSED).
    public func datagramRefused(_ id: FlowID) {
        udp.refused(id)
    }

    /// An ICMP message that arrived on an echo flow's socket.
    public func receiveEcho(_ message: UnsafeRawBufferPointer, on id: FlowID, now: ContinuousClock.Instant) {
        echo.receive(message, on: id, now: now)
    }

    /// A connection a TCP port forward accepted, for the guest at
    /// `guest`:`port`: adopted as a flow toward it, or discarded.
    public func acceptForwarded(_ connection: HostConnection, to guest: IPAddress, port: UInt16,
                                now: ContinuousClock.Instant) {
        guard let link = neighbor(guest) else {
            host.report(.forwardWithoutGuest(guest))
            return host.discard(connection)
        }
        guard let key = freeKey(guest: guest, port: port, isFree: tcp.isFree) else { return host.discard(connection) }
        tcp.connect(connection, to: key, link: link, now: now)
    }

    /// A datagram a host client sent to UDP port forward `forward`, for the
    /// guest at `guest`:`port`.
    public func receiveForwarded(_ payload: UnsafeRawBufferPointer, from client: HostEndpoint, forward: UInt64,
                                 to guest: IPAddress, port: UInt16, now: ContinuousClock.Instant) {
        guard let link = neighbor(guest) else { return drop(.noRoute) }
        udp.receive(payload, from: client, forward: forward, link: link, now: now) {
            freeKey(guest: guest, port: port, isFree: udp.isFree)
        }
    }

    /// A UDP port forward was removed: the flows that answered through it end.
    public func forwardRemoved(_ forward: UInt64) {
        udp.removeFlows(forward: forward)
    }

    /// Starts a TCP handshake from the gateway to `guest`:`port` (a
    /// reachability check) on `connection`, the host's end of a pair, and
    /// calls `report` when it ends.
    public func probe(_ connection: HostConnection, guest: IPAddress, port: UInt16, now: ContinuousClock.Instant,
                      report: @escaping (TCPHandshakeOutcome) -> Void) {
        guard let link = neighbor(guest) else {
            host.discard(connection)
            return report(.failed("no guest has \(guest)"))
        }
        guard let key = freeKey(guest: guest, port: port, isFree: tcp.isFree) else {
            host.discard(connection)
            return report(.failed("no free gateway port"))
        }
        guard let id = tcp.connect(connection, to: key, link: link, now: now) else {
            return report(.failed("the flow limit is reached"))
        }
        tcp.watchHandshake(id, report: report)
    }

    /// A flow key toward a guest from the gateway's address of its family,
    /// with a source port no flow uses.
    private func freeKey(guest: IPAddress, port: UInt16, isFree: (FlowKey) -> Bool) -> FlowKey? {
        let gateway: IPAddress = guest.isIPv6 ? .v6(gatewayIPv6) : .v4(gatewayAddress)
        for _ in 0..<28_232 {
            let key = FlowKey(guest: guest, guestPort: port, remote: gateway, remotePort: nextForwardPort)
            nextForwardPort = nextForwardPort >= 60_999 ? 32_768 : nextForwardPort + 1
            if isFree(key) { return key }
        }
        return nil
    }

    // MARK: Guests coming and going

    /// A guest disconnected: its UDP and ICMP flows end now; its TCP flows
    /// end unless it comes back within `TCPFlowTable.reconnectGrace`.
    public func detach(_ port: PortID, now: ContinuousClock.Instant) {
        tcp.detach(port, now: now)
        udp.detach(port)
        echo.detach(port)
    }

    /// A guest's address is bound to another port now: its TCP flows left
    /// on a port that is gone follow it (`TCPFlowTable.follow`).
    public func follow(_ change: BindingChange, now: ContinuousClock.Instant) {
        tcp.follow(change.address, to: change.link, now: now)
    }

    /// A guest's port drained its backlog (`GuestPort.backlogged` is false
    /// again): the flows that waited for it go on.
    public func backlogDrained(_ port: PortID) {
        tcp.backlogDrained(port)
    }

    // MARK: Turns and timers

    /// After a batch of frames or events: the guest data gathered is
    /// written and the ACKs owed are made. Send the frames before `runTurns`.
    public func endBatch(now: ContinuousClock.Instant) {
        tcp.endBatch(now: now)
    }

    /// Another turn for the flows that want one: the rest of a flow's data
    /// beyond its last turn's share, and the look for more bytes after a
    /// peek came back short, made once what it read has gone to the guest.
    public func runTurns(now: ContinuousClock.Instant) {
        tcp.runTurns(now: now)
    }

    /// True when a flow has more to send right away.
    public var hasWork: Bool { tcp.hasTurnsPending }

    /// When `tick` should run next.
    public var nextDeadline: ContinuousClock.Instant? {
        tcp.count + udp.count + echo.count + reassembler.count + reassemblerIPv6.count > 0 ? lastTick + Self.tickInterval : nil
    }

    public func tick(now: ContinuousClock.Instant) {
        lastTick = now
        tcp.tick(now: now)
        udp.tick(now: now)
        echo.tick(now: now)
        let expired = reassembler.expire(now: now) + reassemblerIPv6.expire(now: now)
        if expired > 0 { drops[.fragment, default: 0] += expired }
    }

    public var statistics: NATStatistics {
        var result = NATStatistics()
        result.tcp = tcp.context.counters
        result.udp = udp.counters
        result.icmp = echo.counters
        result.tcpStates = tcp.states
        result.tcpFlowsOpened = tcp.opened
        result.tcpRetransmissions = tcp.context.retransmissions
        result.udpFlows = udp.count
        result.icmpFlows = echo.count
        result.flowLimitHits = admission.limitHits
        result.drops = Dictionary(uniqueKeysWithValues: drops.map { ($0.key.rawValue, $0.value) })
        return result
    }

    /// Ends every flow, resetting TCP both ways.
    public func closeAll() {
        tcp.closeAll()
        udp.closeAll()
        echo.closeAll()
    }
}
