// The TCP half of the NAT: a table of `TCPFlow`s keyed by the guest's view of
// the connection, each with a host socket in the proxy's epoll. A guest SYN
// opens a non-blocking connect; a port forward's accepted connection opens a
// flow toward the guest. Flows that used their turn are pumped again on the
// next loop turn; ACKs owed for guest data go out once per batch of frames.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

/// How a handshake the gateway started toward a guest ended.
enum TCPHandshakeOutcome: Equatable, Sendable {
    /// The guest answered with SYN-ACK.
    case open
    /// The guest answered with RST: nothing listens on the port.
    case refused
    /// The flow ended otherwise, for this reason (no answer, the proxy stopping).
    case failed(String)
}

final class TCPNAT {
    private struct Entry {
        let flow: TCPFlow
        let socket: HostTCPSocket
    }

    let context: TCPContext
    private let epoll: Epoll
    private let epoch: LoopEpoch
    private let logger: Logger
    private let warnings: WarningLimiter
    /// The NAT's limits on new flows, shared with its other parts.
    private let admission: FlowAdmission
    private var flows: [FlowKey: UInt64] = [:]
    private var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 1
    private var owingAcknowledgment: Set<UInt64> = []
    private var wantingTurn: Set<UInt64> = []
    /// Flows that want a turn but whose guest's port is blocked, by port.
    private var parked: [PortID: Set<UInt64>] = [:]
    private(set) var opened = 0

    init(context: TCPContext, epoll: Epoll, epoch: LoopEpoch, admission: FlowAdmission, logger: Logger,
         warnings: WarningLimiter) {
        self.admission = admission
        self.context = context
        self.epoll = epoll
        self.epoch = epoch
        self.logger = logger
        self.warnings = warnings
    }

    var count: Int { entries.count }
    var hasTurnsPending: Bool { !wantingTurn.isEmpty }

    /// Flows by state name, for `/stats`.
    var states: [String: Int] {
        entries.values.reduce(into: [:]) { $0[$1.flow.stateName, default: 0] += 1 }
    }

    /// Whether a segment belongs to a flow already in the table.
    func hasFlow(_ key: FlowKey) -> Bool { flows[key] != nil }

    /// A segment from the guest; `target` is where the host socket connects for a new flow.
    /// Returns a drop reason when it was refused.
    func guest(_ segment: TCPView, key: FlowKey, link: GuestLink, target: (IPv4Address, UInt16)?,
               now: ContinuousClock.Instant) -> DropReason? {
        if let id = flows[key], let entry = entries[id] {
            let flags = segment.flags
            if entry.flow.phase == .timeWait, flags.contains(.syn), !flags.contains(.ack) {
                remove(id)
            } else {
                if entry.flow.link != link {
                    // The address is bound to this port; the flow follows only its own guest's MAC.
                    guard entry.flow.link.mac == link.mac else {
                        if !segment.flags.contains(.rst) { refuse(segment, key: key, link: link) }
                        return .flowOwner
                    }
                    relink(id, entry, to: link)
                }
                entry.flow.guest(segment, now: now)
                settle(id, entry)
                return nil
            }
        }
        let flags = segment.flags
        guard flags.contains(.syn), !flags.contains(.ack), !flags.contains(.rst), let target else {
            if !flags.contains(.rst) { refuse(segment, key: key, link: link) }
            return .noFlow
        }
        if let refusal = admission.refusal(.tcp, port: link.port) {
            refuse(segment, key: key, link: link)
            return refusal
        }
        let fd: Int32
        switch InetAddress.socket(SOCK_STREAM) {
        case .success(let descriptor): fd = descriptor
        case .failure(let error):
            warnings.warning("tcp-socket", "TCP \(key): no host socket: \(error)")
            refuse(segment, key: key, link: link)
            return .hostSocket
        }
        let id = nextID
        nextID += 1
        let socket = HostTCPSocket(descriptor: fd, token: LoopToken.tcpFlow(id).rawValue, epoll: epoll, clock: epoch)
        let flow = TCPFlow(guestSYN: segment, key: key, link: link, socket: socket, context: context, now: now)
        let entry = Entry(flow: flow, socket: socket)
        add(entry, id: id)
        opened += 1
        let result = InetAddress.connect(fd, target.0, target.1)
        if result == 0 {
            connected(id, entry, now: now)
        } else if result == EINPROGRESS {
            do {
                try socket.watchConnect()
            } catch {
                flow.hostConnectFailed(ENOMEM)
            }
        } else {
            flow.hostConnectFailed(result)
        }
        settle(id, entry)
        return nil
    }

    /// Opens a flow for a guest's SYN to a service of the gateway itself: the
    /// host end is one side of a socketpair, connected at once; the other
    /// side is returned for the service to serve. Nil when refused.
    func local(_ segment: TCPView, key: FlowKey, link: GuestLink, now: ContinuousClock.Instant) -> (Int32, DropReason?) {
        if let refusal = admission.refusal(.tcp, port: link.port) {
            refuse(segment, key: key, link: link)
            return (-1, refusal)
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                         0, &pair) == 0 else {
            refuse(segment, key: key, link: link)
            return (-1, .hostSocket)
        }
        let id = nextID
        nextID += 1
        let socket = HostTCPSocket(descriptor: pair[0], token: LoopToken.tcpFlow(id).rawValue, epoll: epoll, clock: epoch)
        let flow = TCPFlow(guestSYN: segment, key: key, link: link, socket: socket, context: context, now: now)
        let entry = Entry(flow: flow, socket: socket)
        add(entry, id: id)
        opened += 1
        connected(id, entry, now: now)
        settle(id, entry)
        return (pair[1], nil)
    }

    /// Opens a flow toward the guest for a connection a port forward accepted;
    /// returns the flow's id, or nil when it was refused (and `fd` closed).
    @discardableResult
    func forward(_ fd: Int32, to key: FlowKey, link: GuestLink, now: ContinuousClock.Instant) -> UInt64? {
        guard flows[key] == nil, admission.refusal(.tcp, port: nil) == nil else {
            close(fd)
            return nil
        }
        let id = nextID
        nextID += 1
        let socket = HostTCPSocket(descriptor: fd, token: LoopToken.tcpFlow(id).rawValue, epoll: epoll, clock: epoch)
        do {
            try socket.watchData()
        } catch {
            warnings.warning("tcp-forward", "TCP forward \(key): \(error)")
            socket.close(reset: true)
            return nil
        }
        let flow = TCPFlow(connectingTo: key, link: link, socket: socket, context: context, now: now)
        let entry = Entry(flow: flow, socket: socket)
        add(entry, id: id)
        opened += 1
        return id
    }

    /// Calls `report` once the handshake of flow `id` (opened by `forward`)
    /// ends: open when the guest answered the SYN, refused on its RST.
    func watchHandshake(_ id: UInt64, report: @escaping (TCPHandshakeOutcome) -> Void) {
        handshakeWatchers[id] = report
    }

    /// Those waiting for the end of a flow's handshake (`watchHandshake`).
    private var handshakeWatchers: [UInt64: (TCPHandshakeOutcome) -> Void] = [:]

    /// Whether a port forward may use `key` (no live flow holds it).
    func isFree(_ key: FlowKey) -> Bool { flows[key] == nil }

    /// Readiness of a flow's host socket.
    func event(_ id: UInt64, _ events: Epoll.Events, now: ContinuousClock.Instant) {
        guard let entry = entries[id] else { return }
        if entry.flow.phase == .connecting {
            let result = entry.socket.connectResult()
            if result == 0 {
                connected(id, entry, now: now)
            } else {
                entry.flow.hostConnectFailed(result)
            }
        } else {
            if events.contains(.peerClosed) || events.contains(.hangUp) { entry.socket.peerClosed = true }
            if events.contains(.writable) { entry.flow.hostWritable(now: now) }
            if !events.intersection([.readable, .peerClosed, .hangUp, .error]).isEmpty {
                entry.flow.hostReadable(now: now)
            }
        }
        settle(id, entry)
    }

    private func connected(_ id: UInt64, _ entry: Entry, now: ContinuousClock.Instant) {
        do {
            try entry.socket.watchData()
            entry.flow.hostConnected(now: now)
        } catch {
            entry.flow.hostConnectFailed(ENOMEM)
        }
    }

    /// After a batch: ACKs owed, then another turn for flows with more to send.
    func endBatch(now: ContinuousClock.Instant) {
        for id in owingAcknowledgment { entries[id]?.flow.flushAcknowledgment() }
        owingAcknowledgment.removeAll(keepingCapacity: true)
        let turns = wantingTurn
        wantingTurn.removeAll(keepingCapacity: true)
        for id in turns {
            guard let entry = entries[id] else { continue }
            entry.flow.pump(now: now)
            settle(id, entry)
        }
    }

    /// Marks a guest's port blocked (its connection has a backlog) or free
    /// again; flows parked on it get their turn back.
    func setBlocked(_ port: PortID, _ blocked: Bool) {
        if blocked {
            context.blockedPorts.insert(port)
        } else if context.blockedPorts.remove(port) != nil {
            wantingTurn.formUnion(parked.removeValue(forKey: port) ?? [])
        }
    }

    /// Runs due timers and forgets closed flows; ends the flows of guests
    /// that left and did not come back within the grace.
    func tick(now: ContinuousClock.Instant) {
        for (id, entry) in entries {
            if let deadline = entry.flow.deadline, deadline <= now {
                entry.flow.tick(now: now)
                settle(id, entry)
            }
            if let left = orphans[id], now - left >= Self.reconnectGrace {
                if entry.flow.phase != .closed, endedWhileAwayCount < Self.endedWhileAwayLimit {
                    endedWhileAway[entry.flow.link.mac, default: []].append((entry.flow.key, entry.flow.oldestUnacknowledged))
                    endedWhileAwayCount += 1
                }
                entry.flow.abort(resetGuest: false, because: "the guest went away")
                settle(id, entry)
            }
        }
    }

    /// How long the flows of a guest that disconnected wait for it to come
    /// back (a forwarder reconnecting keeps its connections).
    static let reconnectGrace: Duration = .seconds(10)
    /// Flows whose guest's port went away, and when.
    private var orphans: [UInt64: ContinuousClock.Instant] = [:]
    /// Flows ended because their guest stayed away past the grace, by its
    /// MAC, with the sequence number an RST to the guest begins at: when the
    /// guest comes back it is told, so that a connection it only reads from
    /// does not wait for ever.
    private var endedWhileAway: [MACAddress: [(key: FlowKey, sequence: UInt32)]] = [:]
    private var endedWhileAwayCount = 0
    static let endedWhileAwayLimit = 4096

    /// A guest's port went away: its flows wait for it on another port.
    func detach(_ port: PortID, now: ContinuousClock.Instant) {
        for (id, entry) in entries where entry.flow.link.port == port { orphans[id] = now }
        parked[port] = nil
    }

    /// The binding of `address` moved to `link`'s port: the flows of that
    /// guest (same address and MAC) left behind on a port that is gone
    /// follow it and go on at once, so a flow that only the host sends on
    /// resumes too (or is reset by the guest, if it forgot the connection).
    func follow(_ address: IPv4Address, to link: GuestLink, now: ContinuousClock.Instant) {
        for (id, entry) in entries where orphans[id] != nil && entry.flow.key.guest == address && entry.flow.link.mac == link.mac {
            relink(id, entry, to: link)
            entry.flow.resume(now: now)
            settle(id, entry)
        }
        guard let ended = endedWhileAway[link.mac] else { return }
        let (told, kept) = (ended.filter { $0.key.guest == address }, ended.filter { $0.key.guest != address })
        endedWhileAway[link.mac] = kept.isEmpty ? nil : kept
        endedWhileAwayCount -= told.count
        for (key, sequence) in told {
            let header = TCPHeader(sourcePort: key.remotePort, destinationPort: key.guestPort, sequenceNumber: sequence,
                                   flags: [.rst], window: 0)
            context.frames.appendTCP(link, source: key.remote, destination: key.guest, header: header,
                                     payload: UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// Moves a flow to its guest's new port.
    private func relink(_ id: UInt64, _ entry: Entry, to link: GuestLink) {
        admission.moved(.tcp, from: entry.flow.link.port, to: link.port)
        entry.flow.link = link
        orphans[id] = nil
    }

    /// Files a flow after an event: owed ACKs and turns noted, closed flows removed.
    private func settle(_ id: UInt64, _ entry: Entry) {
        if entry.flow.phase != .synSent, let report = handshakeWatchers.removeValue(forKey: id) {
            switch entry.flow.phase {
            case .closed: report(entry.flow.endReason.map { .failed($0) } ?? .refused)
            default: report(.open)
            }
        }
        if entry.flow.phase == .closed {
            remove(id)
            return
        }
        if entry.flow.needsFlush { owingAcknowledgment.insert(id) }
        if entry.flow.wantsTurn {
            if context.blockedPorts.contains(entry.flow.link.port) {
                parked[entry.flow.link.port, default: []].insert(id)
            } else {
                wantingTurn.insert(id)
            }
        }
    }

    /// Files a new flow under its key and its guest.
    private func add(_ entry: Entry, id: UInt64) {
        flows[entry.flow.key] = id
        entries[id] = entry
        admission.opened(.tcp, port: entry.flow.link.port)
    }

    private func remove(_ id: UInt64) {
        guard let entry = entries.removeValue(forKey: id) else { return }
        admission.closed(.tcp, port: entry.flow.link.port)
        orphans[id] = nil
        handshakeWatchers.removeValue(forKey: id)?(.failed(entry.flow.endReason ?? "the flow was removed"))
        if let reason = entry.flow.endReason { logger.debug("TCP \(entry.flow.key) ended: \(reason)") }
        entry.flow.abort(resetGuest: false, because: "removed")
        entry.socket.close(reset: true)
        if flows[entry.flow.key] == id { flows[entry.flow.key] = nil }
    }

    /// Answers a segment that has no flow with an RST (RFC 9293 §3.10.7.1).
    private func refuse(_ segment: TCPView, key: FlowKey, link: GuestLink) {
        let flags = segment.flags
        var length = UInt32(truncatingIfNeeded: segment.payload.count)
        if flags.contains(.syn) { length &+= 1 }
        if flags.contains(.fin) { length &+= 1 }
        let header = flags.contains(.ack)
            ? TCPHeader(sourcePort: key.remotePort, destinationPort: key.guestPort,
                        sequenceNumber: segment.acknowledgmentNumber, flags: [.rst], window: 0)
            : TCPHeader(sourcePort: key.remotePort, destinationPort: key.guestPort, sequenceNumber: 0,
                        acknowledgmentNumber: segment.sequenceNumber &+ length, flags: [.rst, .ack], window: 0)
        context.frames.appendTCP(link, source: key.remote, destination: key.guest, header: header,
                                 payload: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Closes every flow, resetting both sides.
    func closeAll() {
        for (id, entry) in entries {
            entry.flow.abort(resetGuest: true, because: "the proxy is stopping")
            remove(id)
        }
    }
}
