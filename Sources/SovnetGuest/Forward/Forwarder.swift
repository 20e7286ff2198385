// `sovnet forward`: the guest half. One thread, one poll(2) loop over three
// descriptors: the tap, the connection to the host, and a pipe that signal
// handlers write to. Frames read from one side are collected and written to
// the other as a batch; the next read waits until that write has gone, so
// a slow side slows the other instead of filling memory.
//
// The DHCP client (SovnetCore) sees every frame from the host first and
// keeps the replies meant for it; its frames go straight to the host, and its
// leases are applied through rtnetlink and resolv.conf. The poll timeout is
// the client's next deadline. After work the loop polls for `--busy-poll`
// before it sleeps again (`BusyPoll`), so a reply is taken without a wake-up.
//
// IPv6 is the guest kernel's own SLAAC from the gateway's router
// advertisements; the forwarder solicits one each time the host link comes
// up, and writes the DNS servers and search domains advertisements name to
// resolv.conf after the lease's (`RouterDiscovery`).
//
// When the host goes away the tap and its address stay (guest sockets
// survive), the connection is retried with backoff from 100 ms to 5 s, and
// the lease is confirmed again (INIT-REBOOT) once it is back.
//
// Offloads: the tap is opened with virtio-net headers, and a `vm` socket
// asks the host for them (`OffloadLink`). Granted, the tap hands over TCP
// superframes with their checksums left to complete and frames go both ways
// header and all, untouched; refused (gvproxy, `--no-offload`), the tap is
// told to segment and checksum everything and headers are taken off and
// put on at the tap.
//
// Over a serial line (`serial:///dev/hvc1`) there is no connection to lose:
// the link's markers name the host's session, and a new session (the proxy
// restarted, or the hypervisor reconnected) is what confirms the lease again.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import SovnetGuestCore
import SovnetLink
import SovnetWire

/// Runs the guest side until a signal or a fatal error.
public final class Forwarder {
    public let options: ForwarderOptions
    private let logger: Logger
    /// The DHCP client's lines.
    private let dhcpLogger: Logger
    private var tap: TapDevice!
    private var netlink: RouteNetlink?
    private var interfaceIndex: Int32 = 0
    private var connection: FrameEndpoint?
    private var dhcp: DHCPClient?
    private var staticApplied = false
    private var capture: PcapWriter?
    private var signals: Int32 = -1
    /// Frames dropped because they were not well-formed Ethernet.
    public private(set) var malformedFromHost = 0
    private var batch: [UnsafeRawBufferPointer] = []
    /// Frames between the tap and the host carry virtio-net headers.
    private var linkHeaders = false
    /// Frames finished in software: handed over with offloads on while the
    /// link has none (a moment around a reconnect), or too large for it.
    public private(set) var finishedInSoftware = 0
    /// The host session a serial line last named.
    private var hostSession: UInt64?
    /// DNS servers from router advertisements.
    private var routerDiscovery = RouterDiscovery()
    /// The DNS servers and search domains of the lease or static address in use.
    private var ipv4DNS: (servers: [IPv4Address], search: [String]) = ([], [])

    public init(options: ForwarderOptions, logger: Logger) {
        self.options = options
        self.logger = logger.subsystem("forward")
        dhcpLogger = logger.subsystem("dhcp")
        batch.reserveCapacity(256)
    }

    /// Why `sovnet forward` could not start, or stopped with an error.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        init(description: String) {
            self.description = description
        }

        init(_ error: some Error & CustomStringConvertible) {
            description = error.description
        }
    }

    /// Runs until SIGTERM/SIGINT (returns 0) or a fatal error (throws).
    public func run() throws(Failure) -> Int32 {
        if let present = options.stopIfExist.first(where: { RouteNetlink.interfaceIndex($0) != nil }) {
            logger.notice("interface \(present) exists: this guest already has a network; exiting")
            return 0
        }
        signals = sovnet_signal_pipe()
        try openTap()
        if let path = options.pcapPath {
            do throws(CaptureError) {
                capture = try PcapWriter(path: path, filter: options.pcapFilter.map { (expression) throws(CaptureError) in
                    try PacketFilter(expression)
                })
            } catch {
                throw Failure(error)
            }
            capture?.onFailure = { [logger] error in logger.error("capture stopped: \(error); traffic goes on") }
        }
        if !options.preexisting {
            if let fixed = options.staticAddress {
                applyStatic(fixed)
            } else {
                dhcp = DHCPClient(configuration: DHCPClientConfiguration(mac: options.mac, hostName: options.hostName),
                                  seed: UInt64(truncatingIfNeeded: MonotonicInstant.now.hashValue) ^ UInt64(getpid()))
            }
        }
        var backoff = Duration.milliseconds(100)
        var everConnected = false
        while true {
            if waitForSignal(timeout: .zero) { return shutDown() }
            do throws(LinkError) {
                connection = try FrameTransport.connect(to: options.endpoint, framing: options.framing,
                                                        maximumFrameLength: options.maximumFrameLength,
                                                        offload: tap.virtioHeaders, logger: logger)
                try useOffloads((connection as? StreamFrameConnection)?.virtioHeaders ?? false)
            } catch {
                logger.warning("cannot reach host at \(options.endpoint): \(error); retrying in \(backoff.secondsText)")
                if idle(for: backoff) { return shutDown() }
                backoff = min(backoff * 2, .seconds(5))
                continue
            }
            backoff = .milliseconds(100)
            logger.notice("connected to \(options.endpoint) (\(options.framing) framing\(linkHeaders ? ", offloads" : ""))")
            let now = MonotonicInstant.now
            if !everConnected, let actions = dhcp?.start(now: now) {
                perform(actions)
            } else if everConnected, !isSerial, let actions = dhcp?.linkRestored(now: now) {
                perform(actions)
            }
            everConnected = true
            if !options.preexisting { solicitRouter() }
            do {
                if try pump() { return shutDown() }
            } catch {
                throw Failure(error)
            }
            connection?.close()
            connection = nil
            logger.warning("connection to host lost; reconnecting")
        }
    }

    private var isSerial: Bool {
        if case .serial = options.endpoint { return true }
        return false
    }

    // MARK: Setup

    private func openTap() throws(Failure) {
        do throws(LinkError) {
            tap = try TapDevice(name: options.interface, maximumFrameLength: options.maximumFrameLength,
                                virtioHeaders: options.offload)
        } catch {
            if case .system(_, let errno) = error, errno.rawValue == ENOENT || errno.rawValue == ENODEV {
                throw Failure(description: "cannot open /dev/net/tun (\(errno)): the kernel needs CONFIG_TUN "
                                 + "(tun module) and the /dev/net/tun device node")
            }
            if case .system(_, let errno) = error, errno.rawValue == EACCES || errno.rawValue == EPERM {
                throw Failure(description: "cannot create \(options.interface): \(errno); "
                                 + "sovnet forward needs root or CAP_NET_ADMIN")
            }
            throw Failure(error)
        }
        guard !options.preexisting else { return }
        do throws(LinkError) {
            try tap.setMACAddress(options.mac)
            netlink = try RouteNetlink()
        } catch {
            throw Failure(error)
        }
        guard let index = RouteNetlink.interfaceIndex(tap.name) else {
            throw Failure(description: "tap \(tap.name) vanished after creation")
        }
        interfaceIndex = index
        do throws(LinkError) {
            try netlink?.setLinkUp(index: index, mtu: options.mtu)
            if tap.virtioHeaders { try netlink?.setSegmentationLimit(index: index, bytes: OffloadLink.superframeLimit) }
        } catch {
            throw Failure(error)
        }
    }

    /// Turns the tap's offloads on or off to match what the host granted.
    private func useOffloads(_ granted: Bool) throws(LinkError) {
        linkHeaders = granted
        if tap.virtioHeaders { try tap.setOffload(granted) }
    }

    // MARK: The loop

    /// Moves frames until the connection ends (false) or a signal asks to stop (true).
    private func pump() throws(LinkError) -> Bool {
        guard let connection else { return false }
        var descriptors = [
            pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
            pollfd(fd: connection.readDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: tap.readDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        var poller = BusyPoll(window: options.busyPoll)
        while true {
            let ready = poller.wait(idle: PollTimeout.milliseconds(until: PollTimeout.earlier(
                PollTimeout.earlier(dhcp?.nextDeadline, connection.linkDeadline), routerDiscovery.nextDeadline
            ))) { Int(poll(&descriptors, 3, $0)) }
            if ready < 0 {
                if errno == EINTR { continue }
                throw LinkError.system(operation: "poll", errno: .init(rawValue: errno))
            }
            if descriptors[0].revents != 0 { return true }
            // Read in place: binding the client (`if let`) would copy it, leases and all, every turn.
            if let deadline = dhcp?.nextDeadline, MonotonicInstant.now >= deadline, let actions = dhcp?.tick(now: .now) {
                perform(actions)
            }
            if let deadline = routerDiscovery.nextDeadline, MonotonicInstant.now >= deadline,
               routerDiscovery.expire(now: .now) {
                writeResolvConf()
            }
            do {
                try connection.linkTimer(now: .now)
            } catch {
                logger.warning("host connection: \(error)")
                return false
            }
            if descriptors[1].revents != 0 {
                do {
                    if try fromHost(connection) == .closed { return false }
                } catch {
                    logger.warning("host connection: \(error)")
                    return false
                }
                noteHostSession(connection)
            }
            if descriptors[2].revents != 0 {
                do {
                    try fromTap(to: connection)
                } catch {
                    if case .system(let operation, _) = error, operation.hasPrefix("read") { throw error }
                    logger.warning("host connection: \(error)")
                    return false
                }
            }
        }
    }

    /// Frames from the host: DHCP replies to the client, the rest to the tap.
    private func fromHost(_ connection: FrameEndpoint) throws(LinkError) -> ReceiveStatus {
        batch.removeAll(keepingCapacity: true)
        let now = MonotonicInstant.now
        var dhcpActions: [DHCPClientAction] = []
        var dnsChanged = false
        let headerLength = linkHeaders ? VirtioNetHeader.size : 0
        let status = try connection.receive { whole in
            guard whole.count > headerLength else {
                malformedFromHost += 1
                return
            }
            let frame = UnsafeRawBufferPointer(rebasing: whole[headerLength...])
            guard (try? EthernetView(frame)) != nil else {
                malformedFromHost += 1
                logger.debug("dropped malformed frame of \(frame.count) bytes from host")
                return
            }
            capture?.write(frame)
            if options.debug { logger.debug("host> \(FrameSummary.describe(Array(frame)).text)") }
            if dhcp != nil, let actions = dhcp!.receive(frame, now: now) {
                dhcpActions += actions
                return
            }
            if !options.preexisting, routerDiscovery.receive(frame, now: now) { dnsChanged = true }
            batch.append(linkHeaders ? whole : frame)
        }
        if !batch.isEmpty {
            if linkHeaders { try tap.send(batch) } else { try tap.send(plain: batch) }
        }
        capture?.flush()
        perform(dhcpActions)
        if dnsChanged { writeResolvConf() }
        return status
    }

    /// Asks the gateway for a router advertisement, on behalf of the guest kernel.
    private func solicitRouter() {
        let frame = RouterDiscovery.solicitation(from: options.mac)
        capture?.write(frame)
        do {
            try connection?.send(linkHeaders ? VirtioNetHeader.plain + frame : frame)
        } catch {
            logger.warning("cannot send a router solicitation: \(error)")
        }
        capture?.flush()
    }

    /// Frames from the guest kernel, to the host: the first at once, the
    /// rest in one batch. Only a read that finds nothing tells that no more
    /// are ready, and a lone request need not wait for it.
    private func fromTap(to connection: FrameEndpoint) throws(LinkError) {
        batch.removeAll(keepingCapacity: true)
        var finished: [[UInt8]] = []
        var firstSent = false
        let headerLength = tap.virtioHeaders ? VirtioNetHeader.size : 0
        _ = try tap.receive { (whole) throws(LinkError) in
            let frame = UnsafeRawBufferPointer(rebasing: whole[headerLength...])
            capture?.write(frame)
            if options.debug { logger.debug("guest> \(FrameSummary.describe(Array(frame)).text)") }
            if headerLength == 0 || linkHeaders && whole.count <= OffloadLink.maximumFrameLength {
                batch.append(whole)
            } else if let header = try? VirtioNetHeader(whole), !header.isPlain || linkHeaders {
                finishedInSoftware += 1
                finished += SoftwareOffload.frames(of: frame, header: header) ?? []
            } else {
                batch.append(frame)
            }
            if !firstSent, !batch.isEmpty {
                firstSent = true
                try connection.send(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { try connection.send(batch) }
        for frame in finished { try connection.send(linkHeaders ? VirtioNetHeader.plain + frame : frame) }
        capture?.flush()
    }

    /// A serial line names the host's session in its markers: a new one is
    /// a new host (or a reconnected hypervisor), so the lease is confirmed again.
    private func noteHostSession(_ connection: FrameEndpoint) {
        guard let session = (connection as? StreamFrameConnection)?.peerSession, session != hostSession else { return }
        let previous = hostSession
        hostSession = session
        logger.info("serial line synchronised with host session \(String(session, radix: 16))")
        if previous != nil, let actions = dhcp?.linkRestored(now: .now) { perform(actions) }
    }

    /// Milliseconds until the DHCP client's next deadline, or -1.
    private func dhcpTimeout() -> Int32 {
        PollTimeout.milliseconds(until: dhcp?.nextDeadline)
    }

    /// Waits up to `timeout` for a signal, running DHCP timers meanwhile
    /// (with no host to send to). True when a signal arrived.
    private func idle(for timeout: Duration) -> Bool {
        let end = MonotonicInstant.now + timeout
        while MonotonicInstant.now < end {
            if waitForSignal(timeout: min(end - MonotonicInstant.now, .milliseconds(Int64(max(dhcpTimeout(), 1))))) {
                return true
            }
            if let deadline = dhcp?.nextDeadline, MonotonicInstant.now >= deadline {
                perform(dhcp!.tick(now: MonotonicInstant.now))
            }
        }
        return false
    }

    private func waitForSignal(timeout: Duration) -> Bool {
        var descriptor = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, PollTimeout.milliseconds(timeout)) > 0
    }

    // MARK: DHCP actions

    private func perform(_ actions: [DHCPClientAction]) {
        for action in actions {
            switch action {
            case .send(let frame):
                capture?.write(frame)
                if options.debug { dhcpLogger.debug("dhcp> \(FrameSummary.describe(frame).text)") }
                do {
                    try connection?.send(linkHeaders ? VirtioNetHeader.plain + frame : frame)
                } catch {
                    dhcpLogger.warning("cannot send DHCP message: \(error)")
                }
            case .apply(let lease, let previous):
                apply(lease, replacing: previous)
            case .remove(let lease):
                remove(address: lease.address, prefixLength: lease.prefixLength, router: lease.router)
            case .event(let event):
                switch event {
                case .stateChanged: dhcpLogger.debug("\(event)")
                case .ignored: dhcpLogger.info("\(event)")
                default: dhcpLogger.notice("\(event)")
                }
            }
        }
        capture?.flush()
    }

    private func apply(_ lease: DHCPLease, replacing previous: DHCPLease?) {
        if let previous, previous.address != lease.address || previous.prefixLength != lease.prefixLength {
            remove(address: previous.address, prefixLength: previous.prefixLength, router: previous.router)
        }
        configure(address: lease.address, prefixLength: lease.prefixLength, gateway: lease.router, mtu: lease.mtu,
                  dns: lease.dnsServers, search: ResolvConf.searchDomains(of: lease))
    }

    private func applyStatic(_ fixed: ForwarderOptions.StaticAddress) {
        configure(address: fixed.address, prefixLength: fixed.prefixLength, gateway: fixed.gateway, mtu: nil,
                  dns: fixed.dns, search: [])
        logger.notice("static address \(fixed.address)/\(fixed.prefixLength) gateway \(fixed.gateway)")
    }

    private func configure(address: IPv4Address, prefixLength: Int, gateway: IPv4Address?, mtu: Int?,
                           dns: [IPv4Address], search: [String]) {
        guard let netlink else { return }
        do {
            if let mtu, mtu >= 576, mtu <= options.mtu || options.mtu == 0 {
                try netlink.setLinkUp(index: interfaceIndex, mtu: mtu)
            }
            try netlink.addAddress(address, prefixLength: prefixLength, index: interfaceIndex)
            if let gateway { try netlink.replaceDefaultRoute(via: gateway, index: interfaceIndex) }
        } catch {
            logger.error("cannot configure \(tap.name): \(error)")
        }
        ipv4DNS = (dns, search)
        writeResolvConf()
    }

    /// Writes resolv.conf with the lease's DNS servers and those router advertisements named.
    private func writeResolvConf() {
        let now = MonotonicInstant.now
        let servers = ipv4DNS.servers.map(IPAddress.v4) + routerDiscovery.dnsServers(now: now).map(IPAddress.v6)
        let advertised = routerDiscovery.searchDomains(now: now).map { String($0.description.dropLast()) }
        let search = ipv4DNS.search + advertised.filter { !ipv4DNS.search.contains($0) }
        guard let path = options.resolvConf, !servers.isEmpty else { return }
        do {
            try ResolvConf(path: path).write(ResolvConf.contents(servers: servers, search: search))
        } catch {
            logger.error("cannot write \(path): \(error)")
        }
    }

    private func remove(address: IPv4Address, prefixLength: Int, router: IPv4Address?) {
        guard let netlink else { return }
        do {
            if let router { try netlink.removeDefaultRoute(via: router, index: interfaceIndex) }
            try netlink.removeAddress(address, prefixLength: prefixLength, index: interfaceIndex)
            logger.notice("removed \(address)/\(prefixLength) from \(tap.name)")
        } catch {
            logger.error("cannot remove \(address) from \(tap.name): \(error)")
        }
    }

    /// Releases the lease and closes everything.
    private func shutDown() -> Int32 {
        logger.notice("stopping")
        if var client = dhcp {
            perform(client.release(now: MonotonicInstant.now))
            dhcp = client
        }
        connection?.close()
        tap?.close()
        return 0
    }
}
