// The NAT's host side in the proxy: the sockets `NATCore` commands, in the
// proxy loop's epoll. It opens and closes them, performs their system calls
// and turns their readiness into the core's events; it decides nothing.
// TCP flows' sockets are `HostTCPSocket`s under `.tcpFlow(id)` tokens;
// UDP and ICMP echo flows have connected datagram sockets under
// `.udpFlow(id)` and `.pingFlow(id)`; port forward listeners (`ForwardTable`)
// are under `.forward(id)`: their connections and datagrams go to the core.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetGuest
import SovnetLink
import SovnetWire

/// How the proxy's NAT behaves: the core's settings and the host's forwards.
@dynamicMemberLookup
public struct NATConfiguration: Sendable {
    /// What the NAT core decides by.
    public var settings = NATSettings()
    /// Confine port forwards to loopback (`--expose-loopback-only`): `:PORT`
    /// binds 127.0.0.1 instead of every host address, other addresses are refused.
    public var exposeLoopbackOnly = false
    /// Forwards opened at start (`-ssh-port`, `--forward`, the configuration file).
    public var forwards: [PortForward] = []

    public init() {}

    public subscript<Value>(dynamicMember path: WritableKeyPath<NATSettings, Value>) -> Value {
        get { settings[keyPath: path] }
        set { settings[keyPath: path] = newValue }
    }
}

final class NATSockets: NATHost {
    let forwards: ForwardTable
    private let epoll: Epoll
    private let epoch: LoopEpoch
    private let logger: Logger
    private let warnings: WarningLimiter
    /// Serves a connection to one of the gateway's own TCP services, given
    /// the socket that carries it and the guest's port and address.
    private let serveLocally: (GatewayService, Int32, PortID, IPAddress) -> Void
    private var tcpSockets: [FlowID: HostTCPSocket] = [:]
    private var datagramSockets: [FlowID: Int32] = [:]
    private var addresses = HostAddresses()
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    /// What the UDP and ping sockets' reads land in.
    private let datagrams = DatagramBatch()
    private var pingRefusalLogged = false

    init(epoll: Epoll, epoch: LoopEpoch, socketMode: mode_t, logger: Logger,
         serveLocally: @escaping (GatewayService, Int32, PortID, IPAddress) -> Void) {
        self.epoll = epoll
        self.epoch = epoch
        self.logger = logger
        self.serveLocally = serveLocally
        warnings = WarningLimiter(logger: logger)
        forwards = ForwardTable(epoll: epoll, socketMode: socketMode)
    }

    // MARK: Readiness, to the core's events

    /// Readiness of a NAT socket.
    func handle(_ token: LoopToken, _ events: Epoll.Events, core: NATCore, now: ContinuousClock.Instant) {
        switch token {
        case .tcpFlow(let raw):
            let id = FlowID(raw)
            if events.contains(.peerClosed) || events.contains(.hangUp) { tcpSockets[id]?.peerClosed = true }
            core.hostSocketReady(id, readable: !events.intersection([.readable, .peerClosed, .hangUp, .error]).isEmpty,
                                 writable: events.contains(.writable), now: now)
        case .udpFlow(let raw): receiveDatagrams(FlowID(raw), core: core, now: now)
        case .pingFlow(let raw): receiveEchoes(FlowID(raw), core: core, now: now)
        case .forward(let id): accept(forward: id, core: core, now: now)
        default: break
        }
    }

    /// One batch of answers from a UDP flow's socket; the rest, if the
    /// batch was full, on the next report (level-triggered).
    private func receiveDatagrams(_ id: FlowID, core: NATCore, now: ContinuousClock.Instant) {
        guard let fd = datagramSockets[id] else { return }
        switch datagrams.receive(fd) {
        case .failed(let error):
            if error == ECONNREFUSED {
                core.datagramRefused(id)
            } else if error != EAGAIN, error != EWOULDBLOCK {
                logger.debug("UDP \(id): \(String(cString: strerror(error)))")
            }
        case .received(let count):
            for index in 0..<count where datagramSockets[id] == fd {
                core.receiveDatagram(datagrams[index], on: id, now: now)
            }
        }
    }

    /// One batch of echo replies from a ping socket.
    private func receiveEchoes(_ id: FlowID, core: NATCore, now: ContinuousClock.Instant) {
        guard let fd = datagramSockets[id], case .received(let count) = datagrams.receive(fd) else { return }
        for index in 0..<count where datagramSockets[id] == fd {
            core.receiveEcho(datagrams[index], on: id, now: now)
        }
    }

    private func accept(forward id: UInt64, core: NATCore, now: ContinuousClock.Instant) {
        guard let entry = forwards.entries[id] else { return }
        let forward = entry.forward
        let (guest, port) = (forward.remote, forward.remotePort)
        if forward.kind == .udp { return receiveForwarded(entry, id: id, to: guest, port: port, core: core, now: now) }
        while true {
            let fd = sovnet_accept_nonblocking(entry.descriptor)
            guard fd >= 0 else { return }
            core.acceptForwarded(HostConnection(fd), to: guest, port: port, now: now)
        }
    }

    private func receiveForwarded(_ entry: ForwardTable.Entry, id: UInt64, to guest: IPAddress, port: UInt16,
                                  core: NATCore, now: ContinuousClock.Instant) {
        while true {
            guard let (count, address, clientPort) = buffer.withUnsafeMutableBytes({
                InetAddress.receive(entry.descriptor, into: $0)
            }) else { return }
            buffer.withUnsafeBytes {
                core.receiveForwarded(UnsafeRawBufferPointer(rebasing: $0[..<count]), from: HostEndpoint(address, clientPort),
                                      forward: id, to: guest, port: port, now: now)
            }
        }
    }

    /// Starts a TCP handshake from the gateway to `guest`:`port` (a
    /// reachability check) and calls `report` when it ends. The flow's host
    /// end is one side of a socketpair whose other side is closed once the
    /// handshake is over, so an open connection is closed again with FIN.
    func probe(guest: IPAddress, port: UInt16, core: NATCore, now: ContinuousClock.Instant,
               report: @escaping (TCPHandshakeOutcome) -> Void) {
        guard let pair = Self.socketPair() else {
            return report(.failed("socketpair: \(String(cString: strerror(errno)))"))
        }
        let ours = pair.1
        core.probe(HostConnection(pair.0), guest: guest, port: port, now: now) { outcome in
            close(ours)
            report(outcome)
        }
    }

    /// Stops a forward; the UDP flows that answered through it end.
    func unexpose(kind: PortForward.Kind, local: String, by requester: ForwardRequester = .host,
                  core: NATCore) throws(PortForwardError) {
        let id = try forwards.unexpose(kind: kind, local: local, by: requester)
        if kind == .udp { core.forwardRemoved(id) }
    }

    /// Closes every forward listener (the core closes the flows' sockets).
    func closeAll() {
        forwards.closeAll()
    }

    // MARK: NATHost

    func hostAddresses(now: ContinuousClock.Instant) -> HostAddressSet {
        addresses.current(now: now)
    }

    func connectTCP(_ id: FlowID, to address: IPAddress, port: UInt16) -> TCPConnectStart {
        let fd: Int32
        switch InetAddress.socket(for: address, SocketType.stream) {
        case .success(let descriptor): fd = descriptor
        case .failure(let error):
            warnings.warning("tcp-socket", "TCP to \(address.with(port: port)): no host socket: \(error)")
            return .noSocket
        }
        let socket = tcpSocket(fd, id)
        var result = InetAddress.connect(fd, address, port)
        if result == EINPROGRESS {
            // To loopback or through a veth the handshake has usually ended
            // by the time connect returns: the SYN-ACK waited in the socket's
            // backlog until connect released it. Asking again tells, and the
            // guest gets its SYN-ACK in this loop turn rather than the next.
            // Linux says 0 for a connect that ended, POSIX EISCONN.
            switch InetAddress.connect(fd, address, port) {
            case EALREADY: break
            case EISCONN: result = 0
            case let again: result = again
            }
        }
        if result == 0 {
            return (try? socket.watchData()) != nil ? .connected(socket) : .failed(socket, ENOMEM)
        }
        guard result == EINPROGRESS else { return .failed(socket, result) }
        return (try? socket.watchConnect()) != nil ? .connecting(socket) : .failed(socket, ENOMEM)
    }

    func openService(_ service: GatewayService, _ id: FlowID, port: PortID, guest: IPAddress) -> FlowSocket? {
        guard let pair = Self.socketPair() else { return nil }
        let socket = tcpSocket(pair.0, id)
        guard (try? socket.watchData()) != nil else {
            socket.close(reset: true)
            close(pair.1)
            return nil
        }
        serveLocally(service, pair.1, port, guest)
        return socket
    }

    func adoptTCP(_ connection: HostConnection, _ id: FlowID) -> FlowSocket? {
        let socket = tcpSocket(connection.rawValue, id)
        do {
            try socket.watchData()
            return socket
        } catch {
            warnings.warning("tcp-forward", "TCP \(id): \(error)")
            socket.close(reset: true)
            return nil
        }
    }

    func discard(_ connection: HostConnection) {
        close(connection.rawValue)
    }

    func openDatagram(_ id: FlowID, _ kind: DatagramKind, to address: IPAddress, port: UInt16) -> DatagramOpening {
        let fd: Int32
        let echoProtocol = address.isIPv6 ? Int32(IPPROTO_ICMPV6) : Int32(IPPROTO_ICMP)
        switch InetAddress.socket(for: address, SocketType.datagram, kind == .echo ? echoProtocol : 0) {
        case .success(let descriptor): fd = descriptor
        case .failure(let error):
            if kind == .echo, error.rawValue == EACCES || error.rawValue == EPERM {
                if !pingRefusalLogged {
                    pingRefusalLogged = true
                    logger.warning("ICMP echo from guests is dropped: this host does not allow ping sockets (sysctl net.ipv4.ping_group_range)")
                }
                return .notPermitted
            }
            if kind == .udp { warnings.warning("udp-socket", "UDP to \(address.with(port: port)): no host socket: \(error)") }
            return .failed(error.rawValue)
        }
        let token = kind == .echo ? LoopToken.pingFlow(id.rawValue) : LoopToken.udpFlow(id.rawValue)
        let result = InetAddress.connect(fd, address, port)
        guard result == 0, (try? epoll.add(fd, [.readable], token: token.rawValue)) != nil else {
            logger.debug("\(kind == .echo ? "ping" : "UDP") \(id): connect \(address.with(port: port)): \(String(cString: strerror(result)))")
            close(fd)
            return .failed(result == 0 ? ENOMEM : result)
        }
        datagramSockets[id] = fd
        return .opened
    }

    func send(_ payload: UnsafeRawBufferPointer, on id: FlowID) -> DatagramSending {
        guard let fd = datagramSockets[id] else { return .failed }
        if Glibc.send(fd, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT)) >= 0 { return .sent }
        return errno == ECONNREFUSED ? .refused : .failed
    }

    func send(_ payload: UnsafeRawBufferPointer, to client: HostEndpoint, from forward: UInt64) {
        guard let entry = forwards.entries[forward] else { return }
        InetAddress.send(entry.descriptor, payload, to: client.address, client.port)
    }

    func closeDatagram(_ id: FlowID) {
        guard let fd = datagramSockets.removeValue(forKey: id) else { return }
        epoll.remove(fd)
        close(fd)
    }

    func report(_ report: NATReport) {
        switch report {
        case .flowEnded(let key, let reason): logger.debug("TCP \(key) ended: \(reason)")
        case .fragmentDropped(let source, let reason): logger.debug("fragment from \(source) dropped: \(reason)")
        case .forwardWithoutGuest(let address):
            warnings.warning("forward-no-guest", "forward to \(address): no guest has \(address) yet; connection closed")
        }
    }

    // MARK: Sockets

    /// A TCP flow's socket, filed under its flow until it closes.
    private func tcpSocket(_ descriptor: Int32, _ id: FlowID) -> HostTCPSocket {
        let socket = HostTCPSocket(descriptor: descriptor, token: LoopToken.tcpFlow(id.rawValue).rawValue, epoll: epoll,
                                   clock: epoch) { [unowned self] in tcpSockets[id] = nil }
        tcpSockets[id] = socket
        return socket
    }

    /// A connected, non-blocking stream socketpair, or nil (errno set).
    private static func socketPair() -> (Int32, Int32)? {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, SocketType.stream | SocketType.nonBlocking | SocketType.closeOnExec,
                         0, &pair) == 0 else { return nil }
        return (pair[0], pair[1])
    }
}
