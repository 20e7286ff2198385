// `sovnet proxy`: the host half. One thread and one poll(2) loop over the
// listeners, the guest connections and a signal pipe. Each guest connection
// is a port of the `VirtualNetwork` core; a batch of frames read from one
// port is handed to the core, and what it decides (forward to other ports,
// or frames the gateway made) is written before the next read.
//
// This is the frame plane of proxy part 1 (issue #4): listeners, switch,
// ARP, ICMP echo and DHCP. DNS, the HTTP API and the YAML configuration come
// next; NAT to host sockets is issue #5.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

/// Runs the virtual network until a signal.
public final class Proxy {
    public let options: ProxyOptions
    public let network: VirtualNetwork
    private let logger: Logger
    private var listeners: [(listener: FrameListener, single: Bool)] = []
    /// Guests by port, with the listener each came through.
    private var guests: [PortID: (connection: FrameEndpoint, listener: Int)] = [:]
    private var capture: PcapWriter?
    private var signals: Int32 = -1
    /// Frames to write per port after a batch, borrowed from the reading connection.
    private var outgoing: [PortID: [UnsafeRawBufferPointer]] = [:]
    private var made: [([UInt8], PortID)] = []

    public init(options: ProxyOptions, logger: Logger) {
        self.options = options
        self.logger = logger
        network = VirtualNetwork(configuration: options.network)
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
            for (index, entry) in listeners.enumerated() where entry.listener.endpoint == .stdio {
                if !guests.values.contains(where: { $0.listener == index }) { accept(index) }
            }
            guard poll(&descriptors, nfds_t(descriptors.count), -1) >= 0 || errno == EINTR else {
                throw LinkError.system(operation: "poll", errno: .init(rawValue: errno))
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
                }
            }
        }
    }

    private enum Owner {
        case signals, listener(Int), guest(PortID)
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
            let port = network.attach()
            guests[port] = (connection, index)
            logger.notice("guest connected on \(listeners[index].listener.endpoint) as \(port)")
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
            status = try guest.connection.receive { frame in
                capture?.write(frame)
                if options.debug { logger.debug("\(port)> \(FrameSummary.describe(Array(frame)).text)") }
                for delivery in network.receive(frame, from: port, now: now) {
                    switch delivery {
                    case .forward(let targets):
                        for target in targets { outgoing[target, default: []].append(frame) }
                    case .send(let bytes, let target):
                        made.append((bytes, target))
                    }
                }
            }
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
        network.detach(port)
        logger.notice("guest on \(port) disconnected")
        return listeners[guest.listener].single && options.exitOnDisconnect
    }

    private func shutDown() {
        for guest in guests.values { guest.connection.close() }
        guests.removeAll()
        for entry in listeners { entry.listener.close() }
        if let pidFile = options.pidFile { unlink(pidFile) }
        capture?.flush()
    }
}
