// `sovnet proxy`: the host half. One thread and one epoll loop over the
// listeners, the guest connections, the DNS upstream sockets, the NAT's host
// sockets and port-forward listeners, a signal pipe and a mailbox for the
// control API. Each guest connection is a port of the `VirtualNetwork` core;
// a batch of frames read from one port is handed to the core, and what it
// decides (forward to other ports, frames the gateway made, packets for the
// NAT) is carried out before the next read. A batch is at most
// `framesPerTurn` frames: a port with more buffered is served again on the
// next turn, after the other ports, listeners and the mailbox had theirs, so
// a flooding guest cannot keep the loop from them. Frames the NAT made for
// guests are sent at the end of a loop turn, each port's with one call: once
// after the batch's writes and ACKs, and again after the flows' further turns
// (`NATCore.runTurns`), so that what a turn read goes out before the next look.
//
// The loop's timeout is the nearest of the network core's deadline (DNS
// retries), the NAT's timer tick, and the next publication of statistics.
// For `--busy-poll` after a turn that found work, the loop polls instead of
// sleeping (`BusyPoll`), so that a reply is read without a wake-up.
//
// A `-listen` connection whose first request is not `POST /connect` is an
// HTTP control API call: it is handed to `ControlServer` (SwiftNIO, its own
// thread), which also serves `--services` endpoints. The loop owns the
// network core, the NAT and the port forwards: the API reaches them through
// the loop's mailbox (`LoopNetwork`, `LoopAccess`), so no lock is held
// across the loop's system calls.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetGuest
import SovnetLink
import SovnetWire

/// Runs the virtual network until a signal.
public final class Proxy {
    public let options: ProxyOptions
    /// The network core; only the loop's thread touches it.
    let network: VirtualNetwork
    /// The network as the control API reaches it: through the loop's mailbox.
    public let shared: LoopNetwork
    let api: ControlServer
    let logger: Logger
    /// The DHCP server's lines: leases, renewals and releases.
    let dhcpLogger: Logger
    let warnings: WarningLimiter
    let epoll: Epoll
    let epoch = LoopEpoch()
    let mailbox: LoopMailbox
    let nat: NATCore
    /// The NAT's sockets and port forward listeners.
    let natSockets: NATSockets
    var listeners: [(listener: FrameListener, single: Bool)] = []
    /// Guests by port, with the listener each came through.
    var guests: [PortID: (connection: FrameEndpoint, listener: Int)] = [:]
    var capture: PcapWriter?
    /// Frames to write per port after a batch, borrowed from the reading connection.
    var outgoing: [PortID: [UnsafeRawBufferPointer]] = [:]
    var made: [([UInt8], PortID)] = []
    /// What the network core decided for one frame, reused frame after frame.
    var deliveries: [Delivery] = []
    /// The resolvers the gateway's DNS forwards to.
    let dnsUpstreams: DNSUpstreams
    let dnsOverTCP: GatewayDNSOverTCP
    var stopping = false
    /// Guests with whole frames still buffered after their turn.
    var pendingPorts: Set<PortID> = []
    /// `-listen` connections whose request head has not come yet: they may
    /// turn out to be API requests, so no frame is sent to them until then.
    var awaitingHead: Set<PortID> = []
    /// The most frames of one guest handled in one turn of the loop.
    static let framesPerTurn = 256
    /// Segments cut in software for plain guests in the current batch,
    /// against `maximumSegmentsPerBatch`.
    var segmentsThisBatch = 0
    /// The most segments one batch of frames may be cut into, so that a
    /// guest's superframes cannot keep the loop from its other work.
    static let maximumSegmentsPerBatch = 8192
    var published = ContinuousClock.now
    /// Something happened since the statistics were last published.
    var unpublished = false
    static let publishInterval: Duration = .milliseconds(100)
    /// `-notification`: the supervisor told of readiness and guests.
    let notifications: NotificationSender?
    /// The unix socket forwards over SSH, once the loop runs.
    var ssh: SSHForwarding?
    /// Guests announced as connected, with the MAC of their first frame;
    /// the others are announced on their first frame.
    var announced: [PortID: MACAddress] = [:]

    public init(options: ProxyOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger.subsystem("switch")
        dhcpLogger = logger.subsystem("dhcp")
        warnings = WarningLimiter(logger: self.logger)
        notifications = options.notificationSocket.map { NotificationSender(path: $0, logger: logger.subsystem("notify")) }
        epoll = try Epoll()
        dnsUpstreams = DNSUpstreams(resolvers: options.dnsUpstreams, resolvConf: options.resolvConf,
                                    followsSearchDomains: options.hostSearchDomains, epoll: epoll, logger: logger.subsystem("dns"))
        var network = options.network
        if let domains = dnsUpstreams.initialSearchDomains { network.searchDomains = domains }
        network.upstreamResolverCount = dnsUpstreams.addresses.count
        for virtual in options.nat.policy.translations.keys.compactMap(\.v4).sorted()
        where virtual.masked(prefixLength: network.prefixLength) == network.network && !network.virtualAddresses.contains(virtual) {
            network.virtualAddresses.append(virtual)
        }
        for virtual in options.nat.policy.translations.keys.compactMap(\.v6).sorted()
        where virtual.masked(prefixLength: 64) == network.ipv6Prefix && !network.ipv6VirtualAddresses.contains(virtual) {
            network.ipv6VirtualAddresses.append(virtual)
        }
        self.network = VirtualNetwork(configuration: network)
        if let limit = DescriptorLimit.raise(), limit.after != limit.before {
            logger.debug("descriptor limit raised from \(limit.before) to \(limit.after)")
        }
        var natConfiguration = options.nat
        natConfiguration.maximumTotalFlows = DescriptorLimit.flowBudget()
        if natConfiguration.maximumTotalFlows < 3 * natConfiguration.maximumFlows {
            logger.info("NAT flows of all protocols limited to \(natConfiguration.maximumTotalFlows) by the descriptor limit")
        }
        mailbox = try LoopMailbox()
        shared = LoopNetwork(self.network, mailbox: mailbox)
        let api = ControlServer(shared: shared, logger: logger.subsystem("api"))
        self.api = api
        let shared = self.shared
        let dns = GatewayDNSOverTCP(group: api.group, shared: shared, upstreams: dnsUpstreams.addresses,
                                    logger: logger.subsystem("dns"))
        dnsOverTCP = dns
        natSockets = NATSockets(epoll: epoll, epoch: epoch, socketMode: mode_t(options.socketMode),
                                logger: logger.subsystem("nat")) {
            service, descriptor, port, guest in
            switch service {
            case .dns: dns.adopt(descriptor, port: port)
            case .forwarderAPI: api.adopt(descriptor: descriptor, buffered: [], requester: .guest(guest))
            }
        }
        let virtualNetwork = self.network
        nat = NATCore(settings: natConfiguration.settings, network: options.network, ports: virtualNetwork.ports,
                      host: natSockets) { address in
            virtualNetwork.neighbor(address)
        }
    }

    /// Opens every listener, then serves until SIGTERM/SIGINT (returns 0).
    public func run() throws -> Int32 {
        if options.handleSignals {
            try epoll.add(sovnet_signal_pipe(), [.readable], token: LoopToken.signals.rawValue)
        }
        try epoll.add(mailbox.descriptor, [.readable], token: LoopToken.mailbox.rawValue)
        defer { shutDown() }
        if let path = options.pcapPath {
            capture = try PcapWriter(path: path, filter: options.pcapFilter.map { try PacketFilter($0) })
            capture?.onFailure = { [logger] error in logger.error("capture stopped: \(error); traffic goes on") }
        }
        do {
            for endpoint in options.listen {
                try addListener(try open(endpoint, .vm), single: false)
            }
            for endpoint in options.listenSerial {
                try addListener(try open(endpoint, .vm, serial: true), single: false)
            }
            for (endpoint, framing) in options.singleGuest {
                try addListener(try open(endpoint, framing), single: true)
            }
        } catch {
            notifications?.send(.hypervisorError)
            throw error
        }
        for endpoint in options.services {
            try api.listen(on: endpoint, mode: mode_t(options.socketMode))
        }
        dnsUpstreams.start()
        for requested in options.nat.forwards {
            do throws(PortForwardError) {
                let forward = try scoped(requested)
                try natSockets.forwards.expose(forward)
                logger.notice("forwarding \(forward)\(forward.listensOnEveryAddress ? " (every host address)" : "")")
            } catch {
                throw PortForwardError("forward \(requested): \(error)")
            }
        }
        let access = LoopAccess(mailbox: mailbox, proxy: self)
        shared.forwarding = access
        shared.probing = access
        let ssh = SSHForwarding(knownHosts: options.sshKnownHosts, socketMode: mode_t(options.socketMode),
                                logger: logger.subsystem("ssh")) {
            address, port in access.openLoopbackPath(to: address, port: port)
        }
        self.ssh = ssh
        for tunnel in options.sshForwards {
            do throws(PortForwardError) {
                try ssh.start(tunnel)
            } catch {
                throw PortForwardError("forward over SSH \(tunnel.socket): \(error)")
            }
        }
        if let pidFile = options.pidFile {
            try AtomicFile(path: pidFile).write("\(getpid())\n")
        }
        notifications?.send(.ready)
        var poller = BusyPoll(window: options.busyPoll)
        while !stopping {
            epoch.advance()
            for (index, entry) in listeners.enumerated() where entry.listener.endpoint == .stdio {
                if !guests.values.contains(where: { $0.listener == index }) { accept(index) }
            }
            try poller.wait(idle: timeout()) { milliseconds in
                let ready = try epoll.wait(milliseconds: milliseconds)
                for index in 0..<ready {
                    let (raw, events) = epoll.ready(index)
                    guard let token = LoopToken(rawValue: raw) else { continue }
                    unpublished = true
                    try handle(token, events)
                }
                return ready
            }
            for port in pendingPorts.sorted() where pendingPorts.remove(port) != nil {
                if !serve(port), try disconnect(port) { stopping = true }
            }
            let now = ContinuousClock.now
            if let change = dnsUpstreams.check(now: now) { followResolvConf(change) }
            if let deadline = network.nextDeadline, now >= deadline {
                perform(network.tick(now: now))
            }
            if let deadline = nat.nextDeadline, now >= deadline {
                nat.tick(now: now)
                unpublished = true
            }
            nat.endBatch(now: now)
            flushNAT()
            nat.runTurns(now: now)
            flushNAT()
            if unpublished, now - published >= Self.publishInterval {
                published = now
                unpublished = false
                shared.publish(nat: nat.statistics)
            }
        }
        return 0
    }

    /// Makes `run` return after the current loop turn; for any thread.
    public func stop() {
        _ = mailbox.perform { [self] in
            logger.notice("stopping")
            stopping = true
        }
    }

    func handle(_ token: LoopToken, _ events: Epoll.Events) throws {
        switch token {
        case .signals:
            logger.notice("stopping")
            stopping = true
        case .mailbox:
            mailbox.drain()
        case .listener(let index):
            accept(index)
        case .guest(let raw):
            let port = PortID(raw)
            if events.contains(.writable) { flush(port) }
            if !events.intersection([.readable, .hangUp, .error]).isEmpty, !serve(port), try disconnect(port) {
                stopping = true
            }
        case .upstream(let index):
            receiveUpstream(index)
        case .tcpFlow, .udpFlow, .pingFlow, .forward:
            natSockets.handle(token, events, core: nat, now: .now)
        }
    }

    /// Milliseconds until the next deadline, or -1.
    func timeout() -> Int32 {
        if nat.hasWork || !pendingPorts.isEmpty { return 0 }
        var nearest = PollTimeout.earlier(network.nextDeadline, nat.nextDeadline)
        nearest = PollTimeout.earlier(nearest, dnsUpstreams.nextCheck)
        if unpublished { nearest = PollTimeout.earlier(nearest, published + Self.publishInterval) }
        return PollTimeout.milliseconds(until: nearest)
    }

    /// Reads the answers waiting on an upstream resolver's socket.
    func receiveUpstream(_ index: Int) {
        dnsUpstreams.receive(from: index) { perform(network.upstreamDNSReply($0, from: index)) }
    }

    /// Carries out deliveries that did not come from a guest's batch.
    func perform(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            switch delivery {
            case .send(let bytes, let target):
                bytes.withUnsafeBytes { record($0, "gateway>\(target)") }
                transmit(bare: bytes, to: target)
            case .resolve(let query, let upstream):
                dnsUpstreams.send(query, to: upstream)
            case .forward, .nat:
                break
            }
        }
        capture?.flush()
    }

    /// The host's resolv.conf changed: the gateway's DNS over TCP takes the
    /// new resolvers, guests get the search domains with their next lease.
    func followResolvConf(_ change: DNSUpstreams.Change) {
        if let resolvers = change.resolvers { dnsOverTCP.upstreams = resolvers }
        network.hostResolversChanged(upstreamCount: dnsUpstreams.addresses.count, searchDomains: change.searchDomains)
    }

    func open(_ endpoint: Endpoint, _ framing: Framing, serial: Bool = false) throws -> FrameListener {
        let listener = try FrameListener(endpoint: endpoint, framing: framing,
                                         maximumFrameLength: options.maximumFrameLength,
                                         socketMode: mode_t(options.socketMode), serial: serial,
                                         acceptsOffload: options.offload, logger: logger)
        logger.notice("listening on \(endpoint) (\(framing)\(serial ? " over a serial line" : ""))")
        return listener
    }

    func addListener(_ listener: FrameListener, single: Bool) throws {
        listeners.append((listener, single))
        try watch(listener: listeners.count - 1)
    }

    /// Watches a listener for connections (stdio has no descriptor to watch).
    func watch(listener index: Int) throws {
        let descriptor = listeners[index].listener.descriptor
        if descriptor >= 0 { try epoll.add(descriptor, [.readable], token: LoopToken.listener(index).rawValue) }
    }

    /// Whether an Ethernet frame holds an untagged TCP packet: IPv4, or IPv6 without extension headers.
    static func isTCP(_ frame: UnsafeRawBufferPointer) -> Bool {
        (frame.count > 23 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 6)
            || (frame.count > 20 && frame[12] == 0x86 && frame[13] == 0xDD && frame[20] == 6)
    }

    func shutDown() {
        shared.forwarding = nil
        shared.probing = nil
        ssh?.stopAll()
        mailbox.shut()
        nat.closeAll()
        natSockets.closeAll()
        flushNAT()
        for guest in guests.values { guest.connection.close() }
        guests.removeAll()
        for entry in listeners { entry.listener.close() }
        dnsUpstreams.closeAll()
        api.shutDown()
        if let pidFile = options.pidFile { unlink(pidFile) }
        capture?.flush()
        notifications?.finish()
    }
}
