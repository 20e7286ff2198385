// `sovnet proxy`: the host half. One thread and one poll(2) loop over the
// listeners, the guest connections and a signal pipe. Each guest connection
// is a port of the `VirtualNetwork` core; a batch of frames read from one
// port is handed to the core, and what it decides (forward to other ports,
// or frames the gateway made) is written before the next read.
//
// DNS queries the gateway cannot answer itself go out through one connected
// UDP socket per upstream resolver, also in the poll set; the poll timeout is
// the network core's next deadline (DNS retries).
//
// A `-listen` connection whose first request is not `POST /connect` is an
// HTTP control API call: it is handed to `ControlServer` (SwiftNIO, its own
// thread), which also serves `--services` endpoints. The network core is
// shared with it under a lock.
//
// This is proxy part 1 (issue #4) so far: listeners, switch, ARP, ICMP echo,
// DHCP, DNS over UDP and the control API. DNS over TCP comes with the TCP
// core; NAT to host sockets is issue #5.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

/// Runs the virtual network until a signal.
public final class Proxy {
    public let options: ProxyOptions
    /// The network core, shared with the control API under a lock.
    public let shared: SharedNetwork
    private let api: ControlServer
    private let logger: Logger
    private var listeners: [(listener: FrameListener, single: Bool)] = []
    /// Guests by port, with the listener each came through.
    private var guests: [PortID: (connection: FrameEndpoint, listener: Int)] = [:]
    private var capture: PcapWriter?
    private var signals: Int32 = -1
    /// Frames to write per port after a batch, borrowed from the reading connection.
    private var outgoing: [PortID: [UnsafeRawBufferPointer]] = [:]
    private var made: [([UInt8], PortID)] = []
    /// One connected UDP socket per upstream resolver.
    private var upstreams: [Int32] = []

    public init(options: ProxyOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        shared = SharedNetwork(VirtualNetwork(configuration: options.network))
        api = ControlServer(shared: shared, logger: logger)
    }

    /// Opens every listener, then serves until SIGTERM/SIGINT (returns 0).
    public func run() throws -> Int32 {
        signals = sovnet_signal_pipe()
        if let path = options.pcapPath {
            capture = try PcapWriter(path: path, filter: options.pcapFilter.map { try PacketFilter($0) })
        }
        for endpoint in options.listen {
            listeners.append((try open(endpoint, .vm), false))
        }
        for (endpoint, framing) in options.singleGuest {
            listeners.append((try open(endpoint, framing), true))
        }
        for endpoint in options.services {
            try api.listen(on: endpoint, mode: mode_t(options.socketMode))
        }
        for (address, port) in options.dnsUpstreams {
            upstreams.append(try Self.connectUDP(to: address, port: port))
            logger.info("forwarding DNS to \(address):\(port)")
        }
        if let pidFile = options.pidFile {
            try AtomicFile(path: pidFile).write("\(getpid())\n")
        }
        defer { shutDown() }
        while true {
            var descriptors = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            var owners: [Owner] = [.signals]
            for (index, entry) in listeners.enumerated() where entry.listener.descriptor >= 0 {
                if entry.single, guests.values.contains(where: { $0.listener == index }) { continue }
                descriptors.append(pollfd(fd: entry.listener.descriptor, events: Int16(POLLIN), revents: 0))
                owners.append(.listener(index))
            }
            for (port, guest) in guests {
                descriptors.append(pollfd(fd: guest.connection.readDescriptor, events: Int16(POLLIN), revents: 0))
                owners.append(.guest(port))
            }
            for (index, fd) in upstreams.enumerated() {
                descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                owners.append(.upstream(index))
            }
            for (index, entry) in listeners.enumerated() where entry.listener.endpoint == .stdio {
                if !guests.values.contains(where: { $0.listener == index }) { accept(index) }
            }
            guard poll(&descriptors, nfds_t(descriptors.count), timeout()) >= 0 || errno == EINTR else {
                throw LinkError.system(operation: "poll", errno: .init(rawValue: errno))
            }
            if let deadline = shared.withLock({ $0.nextDeadline }), ContinuousClock.now >= deadline {
                perform(shared.withLock { $0.tick(now: ContinuousClock.now) })
            }
            for (descriptor, owner) in zip(descriptors, owners) where descriptor.revents != 0 {
                switch owner {
                case .signals:
                    logger.notice("stopping")
                    return 0
                case .listener(let index):
                    accept(index)
                case .guest(let port):
                    if !serve(port) {
                        if try disconnect(port) { return 0 }
                    }
                case .upstream(let index):
                    receiveUpstream(index)
                }
            }
        }
    }

    private enum Owner {
        case signals, listener(Int), guest(PortID), upstream(Int)
    }

    /// Milliseconds until the network core's next deadline, or -1.
    private func timeout() -> Int32 {
        guard let deadline = shared.withLock({ $0.nextDeadline }) else { return -1 }
        let left = deadline - ContinuousClock.now
        if left <= .zero { return 0 }
        return Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
    }

    /// Reads the answers waiting on an upstream resolver's socket.
    private func receiveUpstream(_ index: Int) {
        var buffer = [UInt8](repeating: 0, count: 65_535)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(upstreams[index], $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { return }
            perform(buffer.withUnsafeBytes { bytes in
                shared.withLock { $0.upstreamDNSReply(UnsafeRawBufferPointer(rebasing: bytes[..<count]), from: index) }
            })
        }
    }

    /// Carries out deliveries that did not come from a guest's batch.
    private func perform(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            switch delivery {
            case .send(let bytes, let target):
                capture?.write(bytes)
                try? guests[target]?.connection.send(bytes)
            case .resolve(let query, let upstream):
                sendUpstream(query, upstream)
            case .forward:
                break
            }
        }
        capture?.flush()
    }

    private func sendUpstream(_ query: [UInt8], _ upstream: Int) {
        guard upstreams.indices.contains(upstream) else { return }
        let sent = query.withUnsafeBytes { send(upstreams[upstream], $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 { logger.debug("DNS upstream \(upstream): \(String(cString: strerror(errno)))") }
    }

    /// A UDP socket connected to a resolver, so only its answers arrive on it.
    static func connectUDP(to address: IPv4Address, port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw LinkError.system(operation: "socket", errno: .init(rawValue: errno)) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = address.rawValue.bigEndian
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let error = LinkError.system(operation: "connect DNS upstream \(address):\(port)", errno: .init(rawValue: errno))
            close(fd)
            throw error
        }
        return fd
    }

    private func open(_ endpoint: Endpoint, _ framing: Framing) throws -> FrameListener {
        let listener = try FrameListener(endpoint: endpoint, framing: framing,
                                         maximumFrameLength: options.maximumFrameLength,
                                         socketMode: mode_t(options.socketMode), logger: logger)
        logger.notice("listening on \(endpoint) (\(framing))")
        return listener
    }

    private func accept(_ index: Int) {
        do {
            let connection = try listeners[index].listener.accept()
            let port = shared.withLock { $0.attach() }
            guests[port] = (connection, index)
            logger.info("connection on \(listeners[index].listener.endpoint) as \(port)")
        } catch {
            logger.warning("accept on \(listeners[index].listener.endpoint): \(error)")
        }
    }

    /// Reads a batch from a guest and delivers it; false when the guest is gone.
    private func serve(_ port: PortID) -> Bool {
        guard let guest = guests[port] else { return false }
        outgoing.removeAll(keepingCapacity: true)
        made.removeAll(keepingCapacity: true)
        let now = ContinuousClock.now
        let status: ReceiveStatus
        do {
            status = try shared.withLock { network in try guest.connection.receive { frame in
                capture?.write(frame)
                if options.debug { logger.debug("\(port)> \(FrameSummary.describe(Array(frame)).text)") }
                for delivery in network.receive(frame, from: port, now: now) {
                    switch delivery {
                    case .forward(let targets):
                        for target in targets { outgoing[target, default: []].append(frame) }
                    case .send(let bytes, let target):
                        made.append((bytes, target))
                    case .resolve(let query, let upstream):
                        sendUpstream(query, upstream)
                    }
                }
            } }
        } catch LinkError.framing(.otherRequest) {
            handOverToAPI(port)
            return true
        } catch {
            logger.warning("\(port): \(error)")
            return false
        }
        for target in Array(outgoing.keys) { deliver(to: target) }
        for (bytes, target) in made {
            capture?.write(bytes)
            if options.debug { logger.debug("gateway>\(target) \(FrameSummary.describe(bytes).text)") }
            do {
                try guests[target]?.connection.send(bytes)
            } catch {
                logger.warning("\(target): \(error)")
            }
        }
        capture?.flush()
        return status != .closed
    }

    /// A `-listen` connection that asked for the control API, not /connect:
    /// the API server takes the socket and the bytes read so far.
    private func handOverToAPI(_ port: PortID) {
        guard let guest = guests.removeValue(forKey: port) else { return }
        shared.withLock { $0.forget(port) }
        logger.debug("connection on \(port) is a control API request")
        guard let stream = guest.connection as? StreamFrameConnection else {
            guest.connection.close()
            return
        }
        let buffered = stream.decoder.drainBuffered()
        api.adopt(descriptor: stream.releaseDescriptor(), buffered: buffered)
    }

    private func deliver(to target: PortID) {
        guard let frames = outgoing.removeValue(forKey: target), !frames.isEmpty, let guest = guests[target] else { return }
        do {
            try guest.connection.send(frames)
        } catch {
            logger.warning("\(target): \(error)")
        }
    }

    /// Forgets a guest; true when the proxy should exit (`--exit-on-disconnect`).
    private func disconnect(_ port: PortID) throws -> Bool {
        guard let guest = guests.removeValue(forKey: port) else { return false }
        guest.connection.close()
        shared.withLock { $0.detach(port) }
        logger.notice("guest on \(port) disconnected")
        return listeners[guest.listener].single && options.exitOnDisconnect
    }

    private func shutDown() {
        for guest in guests.values { guest.connection.close() }
        guests.removeAll()
        for entry in listeners { entry.listener.close() }
        for fd in upstreams { close(fd) }
        api.shutDown()
        if let pidFile = options.pidFile { unlink(pidFile) }
        capture?.flush()
    }
}
