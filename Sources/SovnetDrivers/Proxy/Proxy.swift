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
// guests are sent once per loop turn, each port's with one call.
//
// The loop's timeout is the nearest of the network core's deadline (DNS
// retries), the NAT's timer tick, and the next publication of statistics.
//
// A `-listen` connection whose first request is not `POST /connect` is an
// HTTP control API call: it is handed to `ControlServer` (SwiftNIO, its own
// thread), which also serves `--services` endpoints. The loop owns the
// network core, the NAT and the port forwards: the API reaches them through
// the loop's mailbox (`LoopNetwork`, `LoopAccess`), so no lock is held
// across the loop's system calls.
import CSovnetShim
import Dispatch
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

/// Runs the virtual network until a signal.
public final class Proxy {
    public let options: ProxyOptions
    /// The network core; only the loop's thread touches it.
    private let network: VirtualNetwork
    /// The network as the control API reaches it: through the loop's mailbox.
    public let shared: LoopNetwork
    private let api: ControlServer
    private let logger: Logger
    private let warnings: WarningLimiter
    private let epoll: Epoll
    private let epoch = LoopEpoch()
    private let mailbox: LoopMailbox
    private let nat: NATCore
    /// The NAT's sockets and port forward listeners.
    private let natSockets: NATSockets
    private var listeners: [(listener: FrameListener, single: Bool)] = []
    /// Guests by port, with the listener each came through.
    private var guests: [PortID: (connection: FrameEndpoint, listener: Int)] = [:]
    private var capture: PcapWriter?
    private var signals: Int32 = -1
    /// Frames to write per port after a batch, borrowed from the reading connection.
    private var outgoing: [PortID: [UnsafeRawBufferPointer]] = [:]
    private var made: [([UInt8], PortID)] = []
    /// What the network core decided for one frame, reused frame after frame.
    private var deliveries: [Delivery] = []
    /// One connected UDP socket per upstream resolver; -1 while it cannot be
    /// connected (no route to it yet): tried again with the next query.
    private var upstreams: [Int32] = []
    /// The upstream resolvers, in order; they follow the host's resolv.conf
    /// when `resolvConf` watches it.
    private var dnsUpstreams: [ResolverAddress]
    private var resolvConf: ResolvConfWatcher?
    private var nextResolvConfCheck = ContinuousClock.now
    private static let resolvConfInterval: Duration = .seconds(1)
    private let dnsOverTCP: GatewayDNSOverTCP
    private var stopping = false
    /// Guests with whole frames still buffered after their turn.
    private var pendingPorts: Set<PortID> = []
    /// `-listen` connections whose request head has not come yet: they may
    /// turn out to be API requests, so no frame is sent to them until then.
    private var awaitingHead: Set<PortID> = []
    /// The most frames of one guest handled in one turn of the loop.
    private static let framesPerTurn = 256
    /// Segments cut in software for plain guests in the current batch,
    /// against `maximumSegmentsPerBatch`.
    private var segmentsThisBatch = 0
    /// The most segments one batch of frames may be cut into, so that a
    /// guest's superframes cannot keep the loop from its other work.
    private static let maximumSegmentsPerBatch = 8192
    private var published = ContinuousClock.now
    /// Something happened since the statistics were last published.
    private var unpublished = false
    private static let publishInterval: Duration = .milliseconds(100)
    /// `-notification`: the supervisor told of readiness and guests.
    private let notifications: NotificationSender?
    /// The unix socket forwards over SSH, once the loop runs.
    private var ssh: SSHForwarding?
    /// Guests announced as connected, with the MAC of their first frame;
    /// the others are announced on their first frame.
    private var announced: [PortID: MACAddress] = [:]

    public init(options: ProxyOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        warnings = WarningLimiter(logger: logger)
        notifications = options.notificationSocket.map { NotificationSender(path: $0, logger: logger) }
        var network = options.network
        dnsUpstreams = options.dnsUpstreams
        if let path = options.resolvConf {
            let watcher = ResolvConfWatcher(path: path)
            resolvConf = watcher
            if options.dnsUpstreams.isEmpty { dnsUpstreams = watcher.current.nameservers }
            if options.hostSearchDomains { network.searchDomains = watcher.current.searchDomains }
        }
        network.upstreamResolverCount = dnsUpstreams.count
        for virtual in options.nat.policy.translations.keys.sorted()
        where virtual.masked(prefixLength: network.prefixLength) == network.network && !network.virtualAddresses.contains(virtual) {
            network.virtualAddresses.append(virtual)
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
        epoll = try Epoll()
        mailbox = try LoopMailbox()
        shared = LoopNetwork(self.network, mailbox: mailbox)
        let api = ControlServer(shared: shared, logger: logger)
        self.api = api
        let shared = self.shared
        let dns = GatewayDNSOverTCP(group: api.group, shared: shared, upstreams: dnsUpstreams, logger: logger)
        dnsOverTCP = dns
        natSockets = NATSockets(epoll: epoll, epoch: epoch, socketMode: mode_t(options.socketMode), logger: logger) {
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
            signals = sovnet_signal_pipe()
            try epoll.add(signals, [.readable], token: LoopToken.signals.rawValue)
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
        for (index, address) in dnsUpstreams.enumerated() {
            upstreams.append(-1)
            connectUpstream(index, quietly: false)
            logger.info("forwarding DNS to \(address)")
        }
        if let resolvConf {
            let what = [options.dnsUpstreams.isEmpty ? "DNS resolvers" : nil, options.hostSearchDomains ? "search domains" : nil]
            logger.info("following \(resolvConf.path) for \(what.compactMap { $0 }.joined(separator: " and "))")
        }
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
        let ssh = SSHForwarding(knownHosts: options.sshKnownHosts, socketMode: mode_t(options.socketMode), logger: logger) {
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
        while !stopping {
            epoch.advance()
            for (index, entry) in listeners.enumerated() where entry.listener.endpoint == .stdio {
                if !guests.values.contains(where: { $0.listener == index }) { accept(index) }
            }
            try epoll.wait(milliseconds: timeout()) { raw, events in
                guard let token = LoopToken(rawValue: raw) else { return }
                unpublished = true
                try handle(token, events)
            }
            for port in pendingPorts.sorted() where pendingPorts.remove(port) != nil {
                if !serve(port), try disconnect(port) { stopping = true }
            }
            let now = ContinuousClock.now
            if resolvConf != nil, now >= nextResolvConfCheck {
                nextResolvConfCheck = now + Self.resolvConfInterval
                followResolvConf()
            }
            if let deadline = network.nextDeadline, now >= deadline {
                perform(network.tick(now: now))
            }
            if let deadline = nat.nextDeadline, now >= deadline {
                nat.tick(now: now)
                unpublished = true
            }
            nat.endBatch(now: now)
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

    private func handle(_ token: LoopToken, _ events: Epoll.Events) throws {
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
    private func timeout() -> Int32 {
        if nat.hasWork || !pendingPorts.isEmpty { return 0 }
        var deadlines = [network.nextDeadline, nat.nextDeadline].compactMap { $0 }
        if resolvConf != nil { deadlines.append(nextResolvConfCheck) }
        if unpublished { deadlines.append(published + Self.publishInterval) }
        return PollTimeout.milliseconds(until: deadlines.min())
    }

    /// Sends the frames the NAT made, each port's in one call (with the
    /// virtio-net headers the NAT put before them for an offloading guest).
    private func flushNAT() {
        guard !nat.frames.isEmpty else { return }
        nat.frames.withFramesByPort { port, frames, headerLength in
            guard guests[port] != nil else { return }
            let bytes = nat.frames.bytesByPort[port, default: 0]
            network.countDelivered(to: port, frames: frames.count, bytes: bytes)
            for whole in frames {
                record(UnsafeRawBufferPointer(rebasing: whole[headerLength...]), "nat>\(port)")
            }
            transmit(frames, to: port)
        }
        nat.frames.removeAll()
        capture?.flush()
    }

    /// Reads the answers waiting on an upstream resolver's socket.
    private func receiveUpstream(_ index: Int) {
        var buffer = [UInt8](repeating: 0, count: 65_535)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(upstreams[index], $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { return }
            perform(buffer.withUnsafeBytes { bytes in
                network.upstreamDNSReply(UnsafeRawBufferPointer(rebasing: bytes[..<count]), from: index)
            })
        }
    }

    /// Carries out deliveries that did not come from a guest's batch.
    private func perform(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            switch delivery {
            case .send(let bytes, let target):
                bytes.withUnsafeBytes { record($0, "gateway>\(target)") }
                transmit(bare: bytes, to: target)
            case .resolve(let query, let upstream):
                sendUpstream(query, upstream)
            case .forward, .nat:
                break
            }
        }
        capture?.flush()
    }

    /// Connects upstream resolver `index`'s socket; a failure is logged and
    /// its queries go unanswered (the resolver answers SERVFAIL) until it works.
    private func connectUpstream(_ index: Int, quietly: Bool) {
        let address = dnsUpstreams[index]
        do {
            let fd = try address.connectedUDPSocket().get()
            do {
                try epoll.add(fd, [.readable], token: LoopToken.upstream(index).rawValue)
            } catch {
                close(fd)
                throw error
            }
            upstreams[index] = fd
        } catch {
            let message: Logger.Message = "DNS upstream \(address): connect: \(error); trying again with the next query"
            if quietly { logger.debug(message) } else { logger.warning(message) }
        }
    }

    /// Takes the resolvers (and search domains) of a changed resolv.conf:
    /// the old upstream sockets are closed, queries waiting on them go to the
    /// new ones when they time out, and guests get the search domains with
    /// their next lease.
    private func followResolvConf() {
        guard let changed = resolvConf?.poll() else { return }
        let follows = options.dnsUpstreams.isEmpty
        if follows {
            for fd in upstreams where fd >= 0 {
                epoll.remove(fd)
                close(fd)
            }
            dnsUpstreams = changed.nameservers
            upstreams = Array(repeating: -1, count: dnsUpstreams.count)
            for index in dnsUpstreams.indices { connectUpstream(index, quietly: false) }
            dnsOverTCP.upstreams = dnsUpstreams
        }
        let domains = options.hostSearchDomains ? changed.searchDomains : nil
        network.hostResolversChanged(upstreamCount: dnsUpstreams.count, searchDomains: domains)
        let names = dnsUpstreams.isEmpty ? "none" : dnsUpstreams.map(\.description).joined(separator: ", ")
        let search = domains.map { " (search \($0.isEmpty ? "none" : $0.map { String($0.description.dropLast()) }.joined(separator: " ")))" } ?? ""
        logger.notice("\(resolvConf?.path ?? "resolv.conf") changed: DNS resolvers \(follows ? "now " : "(from --dns-upstream) ")\(names)\(search)")
    }

    private func sendUpstream(_ query: [UInt8], _ upstream: Int) {
        guard upstreams.indices.contains(upstream) else { return }
        if upstreams[upstream] < 0 { connectUpstream(upstream, quietly: true) }
        guard upstreams[upstream] >= 0 else { return }
        let sent = query.withUnsafeBytes { send(upstreams[upstream], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 { logger.debug("DNS upstream \(upstream): \(String(cString: strerror(errno)))") }
    }

    private func open(_ endpoint: Endpoint, _ framing: Framing, serial: Bool = false) throws -> FrameListener {
        let listener = try FrameListener(endpoint: endpoint, framing: framing,
                                         maximumFrameLength: options.maximumFrameLength,
                                         socketMode: mode_t(options.socketMode), serial: serial,
                                         acceptsOffload: options.offload, logger: logger)
        logger.notice("listening on \(endpoint) (\(framing)\(serial ? " over a serial line" : ""))")
        return listener
    }

    private func addListener(_ listener: FrameListener, single: Bool) throws {
        listeners.append((listener, single))
        try watch(listener: listeners.count - 1)
    }

    /// Watches a listener for connections (stdio has no descriptor to watch).
    private func watch(listener index: Int) throws {
        let descriptor = listeners[index].listener.descriptor
        if descriptor >= 0 { try epoll.add(descriptor, [.readable], token: LoopToken.listener(index).rawValue) }
    }

    private func accept(_ index: Int) {
        do {
            let connection = try listeners[index].listener.accept()
            (connection as? StreamFrameConnection)?.decoder.frameBudget = Self.framesPerTurn
            let port = network.attach()
            if (connection as? StreamFrameConnection)?.decoder.isReadingFrames == false { awaitingHead.insert(port) }
            guests[port] = (connection, index)
            try epoll.add(connection.readDescriptor, [.readable], token: LoopToken.guest(port.rawValue).rawValue)
            if listeners[index].single, listeners[index].listener.descriptor >= 0 {
                epoll.remove(listeners[index].listener.descriptor)
            }
            logger.info("connection on \(listeners[index].listener.endpoint) as \(port)")
        } catch {
            warnings.warning("accept", "accept on \(listeners[index].listener.endpoint): \(error)")
            notifications?.send(.hypervisorError)
        }
    }

    /// Reads a batch from a guest and delivers it; false when the guest is gone.
    private func serve(_ port: PortID) -> Bool {
        guard let guest = guests[port] else { return false }
        outgoing.removeAll(keepingCapacity: true)
        made.removeAll(keepingCapacity: true)
        segmentsThisBatch = 0
        let now = ContinuousClock.now
        let stream = guest.connection as? StreamFrameConnection
        let status: ReceiveStatus
        var changes: [BindingChange] = []
        do {
            defer { changes = network.takeBindingChanges() }
            status = try guest.connection.receive { whole in
                guard stream?.virtioHeaders == true else { return route(whole, header: nil, from: port, now: now) }
                if network.ports.update(port, { $0.offload = true }) {
                    logger.info("\(port) carries offloads (virtio-net headers)")
                }
                guard whole.count >= VirtioNetHeader.size + EthernetView.headerLength,
                      let header = try? VirtioNetHeader(whole) else {
                    network.countDrop(.badOffload)
                    return
                }
                route(whole, header: header, from: port, now: now)
            }
        } catch LinkError.framing(.otherRequest) {
            handOverToAPI(port)
            return true
        } catch {
            warnings.warning("guest-read", "\(port): \(error)")
            return false
        }
        if notifications != nil, announced[port] == nil, let mac = network.learnedMAC(on: port) {
            announced[port] = mac
            notifications?.send(.connectionEstablished, mac: mac.description)
        }
        if stream?.decoder.hasCompleteFrame == true { pendingPorts.insert(port) }
        if stream?.decoder.isReadingFrames == true { awaitingHead.remove(port) }
        for change in changes { follow(change, now: now) }
        for target in Array(outgoing.keys) { deliver(to: target) }
        for (bytes, target) in made {
            bytes.withUnsafeBytes { record($0, "gateway>\(target)") }
            transmit(bare: bytes, to: target)
        }
        capture?.flush()
        return status != .closed
    }

    /// Captures a frame crossing the switch and, with `-debug`, logs its
    /// summary after `direction` (`port 1>`, `gateway>port 1`, `nat>port 1`).
    private func record(_ frame: UnsafeRawBufferPointer, _ direction: @autoclosure () -> String) {
        capture?.write(frame)
        if options.debug { logger.debug("\(direction()) \(FrameSummary.describe(Array(frame)).text)") }
    }

    /// A guest address bound to another port: logged, and the NAT's flows
    /// of a guest that came back follow it.
    private func follow(_ change: BindingChange, now: ContinuousClock.Instant) {
        if let from = change.from {
            logger.info("\(change.address) (\(change.link.mac)) is on \(change.link.port) now, back from \(from)")
            nat.follow(change, now: now)
        } else {
            logger.info("\(change.link.port) uses \(change.address) (\(change.link.mac)) without a lease; bound to it")
        }
    }

    /// One frame from a guest, through the network core. `header` is its
    /// virtio-net header on an offloading port: a checksum left to complete
    /// is completed here unless the frame is TCP (the NAT trusts those, as
    /// it would a NIC's checksum offload), so every other parser can check it.
    private func route(_ whole: UnsafeRawBufferPointer, header: VirtioNetHeader?, from port: PortID,
                       now: ContinuousClock.Instant) {
        var header = header
        let frame = header == nil ? whole : UnsafeRawBufferPointer(rebasing: whole[VirtioNetHeader.size...])
        if var pending = header, pending.flags & VirtioNetHeader.needsChecksum != 0, pending.gsoType == 0, !Self.isTCP(frame) {
            SoftwareOffload.completeChecksum(UnsafeMutableRawBufferPointer(mutating: frame), header: pending)
            pending.flags = VirtioNetHeader.dataValid
            pending.store(at: UnsafeMutableRawPointer(mutating: whole.baseAddress!))
            header = pending
        }
        record(frame, "\(port)>")
        deliveries.removeAll(keepingCapacity: true)
        let trusted = header.map { $0.flags & (VirtioNetHeader.needsChecksum | VirtioNetHeader.dataValid) != 0 } ?? false
        network.receive(frame, from: port, now: now, into: &deliveries, nat: nat, checksumTrusted: trusted)
        for delivery in deliveries {
            switch delivery {
            case .forward(let targets):
                for target in targets { forward(whole, frame, header: header, to: target) }
            case .send(let bytes, let target):
                made.append((bytes, target))
            case .resolve(let query, let upstream):
                sendUpstream(query, upstream)
            case .nat:
                break
            }
        }
    }

    /// A frame switched to another guest: as it is between ports alike;
    /// onto an offloading port with a plain header; off one as the plain
    /// frames it stands for (checksum completed, superframe segmented),
    /// each no longer than a plain guest's MTU allows: a longer one is
    /// dropped and counted, since the guest's end would take it for a
    /// broken stream and reconnect.
    private func forward(_ whole: UnsafeRawBufferPointer, _ frame: UnsafeRawBufferPointer, header: VirtioNetHeader?,
                         to target: PortID) {
        switch SoftwareOffload.conversion(from: header, toOffloading: network.ports[target]?.offload == true) {
        case .unchanged: outgoing[target, default: []].append(header == nil ? frame : whole)
        case .addPlainHeader: made.append((Array(frame), target))
        case .removeHeader:
            guard frame.count <= options.maximumFrameLength else { return network.countDrop(.oversizedFrame) }
            made.append((Array(frame), target))
        case .finishInSoftware:
            guard segmentsThisBatch < Self.maximumSegmentsPerBatch, let header,
                  let plain = SoftwareOffload.frames(of: frame, header: header) else { return network.countDrop(.badOffload) }
            segmentsThisBatch += plain.count
            for segment in plain {
                guard segment.count <= options.maximumFrameLength else {
                    network.countDrop(.oversizedFrame)
                    continue
                }
                made.append((segment, target))
            }
        }
    }

    /// Whether an Ethernet frame holds an untagged IPv4 TCP packet.
    static func isTCP(_ frame: UnsafeRawBufferPointer) -> Bool {
        frame.count > 23 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 6
    }

    /// A `-listen` connection that asked for the control API, not /connect:
    /// the API server takes the socket and the bytes read so far.
    private func handOverToAPI(_ port: PortID) {
        guard let guest = guests.removeValue(forKey: port) else { return }
        awaitingHead.remove(port)
        epoll.remove(guest.connection.readDescriptor)
        network.forget(port, now: .now)
        logger.debug("connection on \(port) is a control API request")
        guard let stream = guest.connection as? StreamFrameConnection else {
            guest.connection.close()
            return
        }
        let buffered = stream.decoder.drainBuffered()
        api.adopt(descriptor: stream.releaseDescriptor(), buffered: buffered)
    }

    /// Sends a frame that has no virtio-net header, giving it a plain one
    /// when `port` is an offloading guest's.
    private func transmit(bare bytes: [UInt8], to port: PortID) {
        if network.ports[port]?.offload == true {
            (VirtioNetHeader.plain + bytes).withUnsafeBytes { transmit([$0], to: port) }
        } else {
            bytes.withUnsafeBytes { transmit([$0], to: port) }
        }
    }

    private func deliver(to target: PortID) {
        guard let frames = outgoing.removeValue(forKey: target), !frames.isEmpty else { return }
        transmit(frames, to: target)
    }

    /// Sends frames to a guest without waiting: what its connection cannot
    /// take now waits in the connection's backlog, the port is watched for
    /// writability, and the NAT holds back flows toward it meanwhile.
    private func transmit(_ frames: [UnsafeRawBufferPointer], to port: PortID) {
        guard let guest = guests[port], !awaitingHead.contains(port) else { return }
        do {
            try guest.connection.enqueue(frames)
        } catch {
            warnings.warning("guest-write", "\(port): \(error)")
        }
        watchOutput(port)
    }

    /// Writes a guest's backlog once its connection is writable.
    private func flush(_ port: PortID) {
        guard let guest = guests[port] else { return }
        do {
            try guest.connection.flushBacklog()
        } catch {
            warnings.warning("guest-write", "\(port): \(error)")
        }
        watchOutput(port)
    }

    /// Watches a guest's connection for writability exactly while it has a backlog.
    private func watchOutput(_ port: PortID) {
        guard let guest = guests[port] else { return }
        let backlog = guest.connection.hasBacklog
        guard network.ports.update(port, { $0.backlogged = backlog }) else { return }
        let connection = guest.connection
        let token = LoopToken.guest(port.rawValue).rawValue
        if backlog {
            if connection.sendDescriptor == connection.readDescriptor {
                try? epoll.modify(connection.readDescriptor, [.readable, .writable], token: token)
            } else {
                try? epoll.add(connection.sendDescriptor, [.writable], token: token)
            }
        } else {
            if connection.sendDescriptor == connection.readDescriptor {
                try? epoll.modify(connection.readDescriptor, [.readable], token: token)
            } else {
                epoll.remove(connection.sendDescriptor)
            }
            nat.backlogDrained(port)
        }
    }

    /// Forgets a guest; true when the proxy should exit (`--exit-on-disconnect`).
    private func disconnect(_ port: PortID) throws -> Bool {
        guard let guest = guests.removeValue(forKey: port) else { return false }
        epoll.remove(guest.connection.readDescriptor)
        pendingPorts.remove(port)
        awaitingHead.remove(port)
        if network.ports.isBacklogged(port), guest.connection.sendDescriptor != guest.connection.readDescriptor {
            epoll.remove(guest.connection.sendDescriptor)
        }
        guest.connection.close()
        let now = ContinuousClock.now
        network.detach(port, now: now)
        nat.detach(port, now: now)
        logger.notice("guest on \(port) disconnected")
        if let mac = announced.removeValue(forKey: port) { notifications?.send(.connectionClosed, mac: mac.description) }
        let entry = listeners[guest.listener]
        if entry.single && options.exitOnDisconnect { return true }
        if entry.single { try watch(listener: guest.listener) }
        return false
    }

    private func shutDown() {
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
        for fd in upstreams where fd >= 0 { close(fd) }
        api.shutDown()
        if let pidFile = options.pidFile { unlink(pidFile) }
        capture?.flush()
        notifications?.finish()
    }

    // MARK: Port forwards and checks, for the control API

    /// A forward as this proxy binds it: under `--expose-loopback-only`,
    /// confined to loopback.
    private func scoped(_ forward: PortForward) throws(PortForwardError) -> PortForward {
        options.nat.exposeLoopbackOnly ? try forward.confinedToLoopback() : forward
    }

    /// Sends an echo request from the gateway; when it was sent, or nil when
    /// no guest has `address`.
    private func sendEcho(to address: IPv4Address, identifier: UInt16, sequence: UInt16) -> ContinuousClock.Instant? {
        guard let request = network.echoRequest(to: address, identifier: identifier, sequence: sequence) else {
            return nil
        }
        let sent = ContinuousClock.now
        perform([request])
        return sent
    }

    /// The API's way to the forward table and the checks: each call runs on the loop's thread.
    private final class LoopAccess: PortForwarding, GuestProbing, @unchecked Sendable {
        private let mailbox: LoopMailbox
        private unowned let proxy: Proxy

        init(mailbox: LoopMailbox, proxy: Proxy) {
            self.mailbox = mailbox
            self.proxy = proxy
        }

        func forwards(for requester: ForwardRequester) -> [PortForward]? {
            mailbox.perform { [proxy] in
                proxy.natSockets.forwards.forwards.filter {
                    guard case .guest(let address) = requester else { return true }
                    return $0.remote == address
                }
            }
        }

        func expose(_ forward: PortForward, by requester: ForwardRequester) -> PortForwardError? {
            mailbox.perform { [proxy] () -> PortForwardError? in
                do throws(PortForwardError) {
                    var made = try proxy.scoped(forward)
                    if case .guest(let address) = requester {
                        made = try proxy.options.guestForwards.admit(forward, guest: address,
                                                                     held: proxy.natSockets.forwards.count(madeBy: requester))
                    }
                    try proxy.natSockets.forwards.expose(made, owner: requester)
                    proxy.logger.notice("forwarding \(made) for \(requester)\(made.listensOnEveryAddress ? " (every host address)" : "")")
                    return nil
                } catch {
                    if requester != .host { proxy.warnings.warning("guest-forward", "\(requester): \(error)") }
                    return error
                }
            } ?? PortForwardError("the proxy is shutting down")
        }

        func unexpose(kind: PortForward.Kind, local: String, by requester: ForwardRequester) -> PortForwardError? {
            if kind == .unix, requester == .host, proxy.ssh?.stop(socket: local) == true {
                proxy.logger.notice("stopped forwarding \(local) over SSH")
                return nil
            }
            return mailbox.perform { [proxy] () -> PortForwardError? in
                do throws(PortForwardError) {
                    let local = proxy.options.nat.exposeLoopbackOnly ? try PortForward.loopbackLocal(kind: kind, local) : local
                    try proxy.natSockets.unexpose(kind: kind, local: local, by: requester, core: proxy.nat)
                    proxy.logger.notice("stopped forwarding \(kind) \(local) for \(requester)")
                    return nil
                } catch {
                    return error
                }
            } ?? PortForwardError("the proxy is shutting down")
        }

        func tunnels(for requester: ForwardRequester) -> [SSHTunnelSpec] {
            requester == .host ? proxy.ssh?.specs ?? [] : []
        }

        func expose(_ tunnel: SSHTunnelSpec, by requester: ForwardRequester) -> PortForwardError? {
            guard requester == .host else { return PortForwardError("only the host may forward over SSH") }
            guard let ssh = proxy.ssh else { return PortForwardError("the proxy is shutting down") }
            do throws(PortForwardError) {
                try ssh.start(tunnel)
                return nil
            } catch {
                return error
            }
        }

        /// A loopback port forward to `address`:`port` in the virtual network, for `ssh`.
        func openLoopbackPath(to address: IPv4Address, port: UInt16) -> Result<UInt16, PortForwardError> {
            mailbox.perform { [proxy] () -> Result<UInt16, PortForwardError> in
                do throws(PortForwardError) {
                    let made = try proxy.natSockets.forwards.expose(PortForward(kind: .tcp, local: "127.0.0.1:0", remote: "\(address):\(port)"),
                                                             pinned: true)
                    proxy.logger.info("forwarding \(made) for SSH")
                    return .success(made.localAddress?.1 ?? 0)
                } catch {
                    return .failure(error)
                }
            } ?? .failure(PortForwardError("the proxy is shutting down"))
        }

        func ping(_ address: IPv4Address, count: Int, interval: Duration, timeout: Duration) -> PingReport {
            let identifier = UInt16.random(in: 1...UInt16.max)
            var sent: [UInt16: ContinuousClock.Instant] = [:]
            var replies: [GatewayEchoReply] = []
            let shared = proxy.shared
            for sequence in 1...UInt16(clamping: max(1, count)) {
                if sequence > 1 { sleep(interval) }
                // nil: the loop has stopped; .some(nil): no guest has the address.
                switch mailbox.perform({ [proxy] in proxy.sendEcho(to: address, identifier: identifier, sequence: sequence) }) {
                case nil:
                    return PingReport(address: "\(address)", transmitted: sent.count, roundTrips: [], error: "the proxy is shutting down")
                case .some(nil):
                    _ = shared.perform { $0.endEcho(identifier: identifier) }
                    return PingReport(address: "\(address)", transmitted: sent.count, roundTrips: [],
                                      error: "no guest has \(address)")
                case .some(let time?):
                    sent[sequence] = time
                }
                replies += shared.perform { $0.takeEchoReplies(identifier: identifier) } ?? []
            }
            let deadline = ContinuousClock.now + timeout
            while Set(replies.map(\.sequence)).count < sent.count, ContinuousClock.now < deadline {
                sleep(.milliseconds(2))
                replies += shared.perform { $0.takeEchoReplies(identifier: identifier) } ?? []
            }
            replies += shared.perform { $0.endEcho(identifier: identifier) } ?? []
            var roundTrips: [UInt16: Double] = [:]
            for reply in replies where reply.source == address {
                guard let time = sent[reply.sequence], roundTrips[reply.sequence] == nil else { continue }
                roundTrips[reply.sequence] = (reply.received - time).milliseconds
            }
            return PingReport(address: "\(address)", transmitted: sent.count,
                              roundTrips: roundTrips.sorted { $0.key < $1.key }.map(\.value))
        }

        func connect(_ address: IPv4Address, port: UInt16, timeout: Duration) -> TCPCheckReport {
            let answer = HandshakeAnswer()
            let started = mailbox.perform { [proxy] () -> ContinuousClock.Instant in
                let now = ContinuousClock.now
                proxy.natSockets.probe(guest: address, port: port, core: proxy.nat, now: now) { answer.set($0) }
                return now
            }
            guard let started else {
                return TCPCheckReport(address: "\(address)", port: port, outcome: .failed, detail: "the proxy is shutting down")
            }
            guard let (outcome, time) = answer.wait(timeout: timeout) else {
                return TCPCheckReport(address: "\(address)", port: port, outcome: .timeout,
                                      detail: "no answer in \(timeout)")
            }
            let elapsed = (time - started).milliseconds
            switch outcome {
            case .open: return TCPCheckReport(address: "\(address)", port: port, outcome: .open, milliseconds: elapsed)
            case .refused:
                return TCPCheckReport(address: "\(address)", port: port, outcome: .refused, milliseconds: elapsed,
                                      detail: "connection refused (RST)")
            case .failed(let reason):
                return TCPCheckReport(address: "\(address)", port: port, outcome: .failed, detail: reason)
            }
        }

        private func sleep(_ duration: Duration) {
            var time = timespec(tv_sec: Int(duration.components.seconds),
                                tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
            nanosleep(&time, nil)
        }
    }

    /// Where the loop leaves a handshake's outcome for the thread that asked.
    private final class HandshakeAnswer: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var value: (TCPHandshakeOutcome, ContinuousClock.Instant)?

        func set(_ outcome: TCPHandshakeOutcome) {
            value = (outcome, .now)
            done.signal()
        }

        func wait(timeout: Duration) -> (TCPHandshakeOutcome, ContinuousClock.Instant)? {
            guard done.wait(timeout: .now() + .milliseconds(Int(timeout.milliseconds))) == .success else { return nil }
            return value
        }
    }
}
