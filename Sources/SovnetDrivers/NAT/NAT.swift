// The NAT behind the gateway: guest packets for addresses beyond it become
// traffic on ordinary host sockets, and host port forwards become traffic
// into guests. The proxy loop hands it the frames the virtual network marked
// `.nat`, the readiness of its sockets, and timer ticks; it leaves frames for
// guests in `frames`, which the loop sends after each batch.
//
// Per frame: the IPv4 header is checked (packets with options are dropped
// and counted; fragments are reassembled first), the destination is decided by the `NATPolicy` (translated,
// as asked, or refused and counted), and the packet goes to the TCP, UDP or
// ICMP part. TCP to the gateway's own address is its DNS (53) and forwarder
// API (80), each served over a socketpair; other traffic to that address
// reaches only flows that already exist there, which are the port forwards'.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

/// How the NAT behaves; gvproxy's defaults.
public struct NATConfiguration: Sendable {
    public var policy = NATPolicy()
    /// Flows of each protocol at once; past it a new TCP flow gets an RST and
    /// other new flows are dropped (`flow-limit`).
    public var maximumFlows = 16_384
    /// Flows of each protocol one guest (switch port) may open; past it, as
    /// past `maximumFlows`, but counted as `guest-flow-limit`.
    public var maximumFlowsPerGuest = 4096
    /// Flows of all protocols together: what the descriptor limit can carry
    /// (`DescriptorLimit.flowBudget`), set by the proxy at start.
    public var maximumTotalFlows = Int.max
    /// How long a UDP or ICMP flow lives without traffic.
    public var idleTimeout: Duration = .seconds(60)
    /// Whether the gateway's port 80 serves the forwarder API to guests.
    public var guestAPI = true
    /// Confine port forwards to loopback (`--expose-loopback-only`): `:PORT`
    /// binds 127.0.0.1 instead of every host address, other addresses are refused.
    public var exposeLoopbackOnly = false
    /// Forwards opened at start (`-ssh-port`, `--forward`, the configuration file).
    public var forwards: [PortForward] = []

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

/// The gateway's own TCP services, reached by guests at its address.
enum GatewayService {
    /// DNS over TCP (RFC 7766), port 53.
    case dns
    /// The forwarder endpoints of the control API, port 80, as gvproxy has them.
    case forwarderAPI

    init?(port: UInt16) {
        switch port {
        case 53: self = .dns
        case 80: self = .forwarderAPI
        default: return nil
        }
    }
}

final class NAT {
    let frames: GuestFrames
    let forwards: ForwardTable
    private let tcp: TCPNAT
    private let udp: UDPNAT
    private let ping: PingNAT
    private let configuration: NATConfiguration
    private let admission: FlowAdmission
    private let gatewayAddress: IPv4Address
    private let logger: Logger
    private let warnings: WarningLimiter
    private let neighbor: (IPv4Address) -> GuestLink?
    /// Serves a connection to one of the gateway's own TCP services, given
    /// the socket that carries it and the guest's port and address.
    private let serveLocally: (GatewayService, Int32, PortID, IPv4Address) -> Void
    private var drops: [DropReason: Int] = [:]
    private var reassembler = IPv4Reassembler()
    private var hostAddresses = HostAddresses()
    private var nextForwardPort: UInt16 = 32768
    private var datagram = [UInt8](repeating: 0, count: 65_536)
    /// How often timers run while any flow exists.
    private static let tickInterval: Duration = .milliseconds(100)
    private var lastTick = ContinuousClock.now

    init(configuration: NATConfiguration, network: VirtualNetworkConfiguration, epoll: Epoll, epoch: LoopEpoch,
         socketMode: mode_t, logger: Logger, neighbor: @escaping (IPv4Address) -> GuestLink?,
         serveLocally: @escaping (GatewayService, Int32, PortID, IPv4Address) -> Void) {
        self.configuration = configuration
        self.gatewayAddress = network.gatewayAddress
        self.logger = logger
        warnings = WarningLimiter(logger: logger)
        self.neighbor = neighbor
        self.serveLocally = serveLocally
        frames = GuestFrames(gatewayMAC: network.gatewayMAC, mtu: network.mtu)
        let context = TCPContext(settings: TCPSettings(mtu: network.mtu), frames: frames)
        admission = FlowAdmission(maximumFlows: configuration.maximumFlows,
                                  maximumFlowsPerGuest: configuration.maximumFlowsPerGuest,
                                  maximumTotal: configuration.maximumTotalFlows)
        tcp = TCPNAT(context: context, epoll: epoll, epoch: epoch, admission: admission, logger: logger,
                     warnings: warnings)
        udp = UDPNAT(frames: frames, epoll: epoll, idleTimeout: configuration.idleTimeout, admission: admission, logger: logger,
                     warnings: warnings)
        ping = PingNAT(frames: frames, epoll: epoll, idleTimeout: configuration.idleTimeout, admission: admission, logger: logger)
        forwards = ForwardTable(epoll: epoll, socketMode: socketMode)
    }

    private func drop(_ reason: DropReason) {
        drops[reason, default: 0] += 1
    }

    // MARK: From guests

    /// An IPv4 frame from `port` that the virtual network marked for the NAT.
    /// On an offloading port (`offload`), a TCP segment may be a superframe,
    /// and `checksumTrusted` says its checksum was left to complete by a
    /// kernel on this host, as a NIC's checksum offload would: it is not summed.
    func receive(_ frame: UnsafeRawBufferPointer, from port: PortID, offload: Bool = false, checksumTrusted: Bool = false,
                 now: ContinuousClock.Instant) {
        guard let ethernet = try? EthernetView(frame), let ip = try? IPv4View(ethernet.payload) else {
            drop(.malformedIPv4)
            return
        }
        let link = GuestLink(port: port, mac: ethernet.source, offload: offload)
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
            logger.debug("fragment from \(ip.source) dropped: \(reason)")
            drop(.fragment)
        }
    }

    /// A whole IPv4 packet from a guest.
    private func receive(_ ip: IPv4View, link: GuestLink, checksumTrusted: Bool = false, now: ContinuousClock.Instant) {
        if ip.headerLength != IPv4View.minimumHeaderLength { return drop(.ipOptions) }
        var target: IPv4Address?
        if ip.destination != gatewayAddress {
            switch configuration.policy.decide(ip.destination, transport: ip.protocol,
                                               hostAddresses: hostAddresses.current(now: now)) {
            case .host(let address): target = address
            case .refuse(let reason): return drop(reason)
            }
        }
        switch ip.protocol {
        case .tcp:
            let parsed = checksumTrusted ? try? TCPView(ip.payload)
                : try? TCPView(ip.payload, source: ip.source, destination: ip.destination)
            guard let segment = parsed else { return drop(.badChecksum) }
            let key = FlowKey(guest: ip.source, guestPort: segment.sourcePort, remote: ip.destination,
                              remotePort: segment.destinationPort)
            if target == nil, !tcp.hasFlow(key), segment.flags.contains(.syn), !segment.flags.contains(.ack),
               let service = GatewayService(port: segment.destinationPort),
               service != .forwarderAPI || configuration.guestAPI {
                let (descriptor, refusal) = tcp.local(segment, key: key, link: link, now: now)
                if let refusal { return drop(refusal) }
                serveLocally(service, descriptor, link.port, key.guest)
                return
            }
            if let reason = tcp.guest(segment, key: key, link: link, target: target.map { ($0, segment.destinationPort) },
                                      now: now) {
                drop(reason)
            }
        case .udp:
            guard let datagram = try? UDPView(ip.payload, source: ip.source, destination: ip.destination) else {
                return drop(.badChecksum)
            }
            let key = FlowKey(guest: ip.source, guestPort: datagram.sourcePort, remote: ip.destination,
                              remotePort: datagram.destinationPort)
            if let reason = udp.guest(ip, datagram, key: key, link: link,
                                      target: target.map { ($0, datagram.destinationPort) }, now: now) {
                drop(reason)
            }
        case .icmp:
            guard let message = try? ICMPv4View(ip.payload) else { return drop(.malformedICMP) }
            guard message.type == .echoRequest, let target else { return drop(.noService) }
            if let reason = ping.guest(message, from: ip.source, to: ip.destination, link: link, target: target, now: now) {
                drop(reason)
            }
        default:
            drop(.noService)
        }
    }

    // MARK: From host sockets

    /// Readiness of a NAT socket.
    func event(_ token: LoopToken, _ events: Epoll.Events, now: ContinuousClock.Instant) {
        switch token {
        case .tcpFlow(let id): tcp.event(id, events, now: now)
        case .udpFlow(let id): udp.event(id, now: now)
        case .pingFlow(let id): ping.event(id, now: now)
        case .forward(let id): accept(forward: id, now: now)
        default: break
        }
    }

    private func accept(forward id: UInt64, now: ContinuousClock.Instant) {
        guard let entry = forwards.entries[id] else { return }
        let forward = entry.forward
        if forward.kind == .udp {
            receiveForwarded(entry, now: now)
            return
        }
        while true {
            let fd = sovnet_accept_nonblocking(entry.descriptor)
            guard fd >= 0 else { return }
            guard let link = neighbor(forward.remote) else {
                warnings.warning("forward-no-guest", "forward \(forward): no guest has \(forward.remote) yet; connection closed")
                close(fd)
                continue
            }
            guard let key = freeKey(guest: forward.remote, port: forward.remotePort, isFree: tcp.isFree) else {
                close(fd)
                continue
            }
            tcp.forward(fd, to: key, link: link, now: now)
        }
    }

    private func receiveForwarded(_ entry: ForwardTable.Entry, now: ContinuousClock.Instant) {
        let forward = entry.forward
        while true {
            var client = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let count = datagram.withUnsafeMutableBytes { buffer in
                withUnsafeMutablePointer(to: &client) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        recvfrom(entry.descriptor, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
                    }
                }
            }
            guard count >= 0 else { return }
            guard let link = neighbor(forward.remote) else {
                drop(.noRoute)
                continue
            }
            let key = udp.forwardKey(client: client, listener: entry.descriptor)
                ?? freeKey(guest: forward.remote, port: forward.remotePort, isFree: udp.isFree)
            guard let key else { continue }
            datagram.withUnsafeBytes {
                udp.forwarded(UnsafeRawBufferPointer(rebasing: $0[..<count]), from: client, listener: entry.descriptor,
                              key: key, link: link, now: now)
            }
        }
    }

    /// Starts a TCP handshake from the gateway to `guest`:`port` (a reachability
    /// check) and calls `report` when it ends. The flow's host end is one side
    /// of a socketpair whose other side is closed once the handshake is over,
    /// so an open connection is closed again with FIN.
    func probeTCP(guest: IPv4Address, port: UInt16, now: ContinuousClock.Instant,
                  report: @escaping (TCPHandshakeOutcome) -> Void) {
        guard let link = neighbor(guest) else { return report(.failed("no guest has \(guest)")) }
        guard let key = freeKey(guest: guest, port: port, isFree: tcp.isFree) else {
            return report(.failed("no free gateway port"))
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                         0, &pair) == 0 else {
            return report(.failed("socketpair: \(String(cString: strerror(errno)))"))
        }
        let ours = pair[1]
        guard let id = tcp.forward(pair[0], to: key, link: link, now: now) else {
            close(ours)
            return report(.failed("the flow limit is reached"))
        }
        tcp.watchHandshake(id) { outcome in
            close(ours)
            report(outcome)
        }
    }

    /// A flow key toward a guest from the gateway, with a source port no flow uses.
    private func freeKey(guest: IPv4Address, port: UInt16, isFree: (FlowKey) -> Bool) -> FlowKey? {
        for _ in 0..<28_232 {
            let key = FlowKey(guest: guest, guestPort: port, remote: gatewayAddress, remotePort: nextForwardPort)
            nextForwardPort = nextForwardPort >= 60_999 ? 32_768 : nextForwardPort + 1
            if isFree(key) { return key }
        }
        return nil
    }

    /// Stops a forward and ends the UDP flows that answered through it.
    func unexpose(kind: PortForward.Kind, local: String, by requester: ForwardRequester = .host) throws(PortForwardError) {
        let descriptor = try forwards.unexpose(kind: kind, local: local, by: requester)
        if kind == .udp { udp.removeFlows(listener: descriptor) }
    }

    // MARK: Turns and timers

    /// After a batch of frames or events: owed ACKs and pending sends.
    func endBatch(now: ContinuousClock.Instant) {
        tcp.endBatch(now: now)
    }

    /// A guest disconnected: its UDP and ICMP flows end now; its TCP flows
    /// end unless it comes back within `TCPNAT.reconnectGrace`.
    func detach(_ port: PortID, now: ContinuousClock.Instant) {
        tcp.detach(port, now: now)
        udp.detach(port)
        ping.detach(port)
    }

    /// A guest's address is bound to another port now: its TCP flows left
    /// on a port that is gone follow it (`TCPNAT.follow`).
    func follow(_ change: BindingChange, now: ContinuousClock.Instant) {
        tcp.follow(change.address, to: change.link, now: now)
    }

    /// Marks a guest's port blocked or free (see `TCPNAT.setBlocked`).
    func setBlocked(_ port: PortID, _ blocked: Bool) {
        tcp.setBlocked(port, blocked)
    }

    /// True when a flow has more to send right away.
    var hasWork: Bool { tcp.hasTurnsPending }

    /// When `tick` should run next.
    var nextDeadline: ContinuousClock.Instant? {
        tcp.count + udp.count + ping.count + reassembler.count > 0 ? lastTick + Self.tickInterval : nil
    }

    func tick(now: ContinuousClock.Instant) {
        lastTick = now
        tcp.tick(now: now)
        udp.tick(now: now)
        ping.tick(now: now)
        let expired = reassembler.expire(now: now)
        if expired > 0 { drops[.fragment, default: 0] += expired }
    }

    var statistics: NATStatistics {
        var result = NATStatistics()
        result.tcp = tcp.context.counters
        result.udp = udp.counters
        result.icmp = ping.counters
        result.tcpStates = tcp.states
        result.tcpFlowsOpened = tcp.opened
        result.tcpRetransmissions = tcp.context.retransmissions
        result.udpFlows = udp.count
        result.icmpFlows = ping.count
        result.flowLimitHits = admission.limitHits
        result.drops = Dictionary(uniqueKeysWithValues: drops.map { ($0.key.rawValue, $0.value) })
        return result
    }

    func closeAll() {
        tcp.closeAll()
        udp.closeAll()
        ping.closeAll()
        forwards.closeAll()
    }
}
