// The TCP part of the NAT core: a table of `TCPFlow`s keyed by the guest's
// view of the connection, each with a host socket the host opened for it. A
// guest SYN starts a host connect; a port forward's accepted connection
// opens a flow toward the guest. Flows that used their turn are pumped again
// after the batch; ACKs owed for guest data go out once per batch of frames.
// A guest's flows outlive its connection by `reconnectGrace`, so that a
// forwarder that reconnects keeps them; flows toward a guest whose
// connection has a backlog wait (parked) until it drains.
import SovnetWire

/// How a handshake the gateway started toward a guest ended.
public enum TCPHandshakeOutcome: Equatable, Sendable {
    /// The guest answered with SYN-ACK.
    case open
    /// The guest answered with RST: nothing listens on the port.
    case refused
    /// The flow ended otherwise, for this reason (no answer, the proxy stopping).
    case failed(String)
}

final class TCPFlowTable {
    let context: TCPContext
    private unowned let host: NATHost
    private let ids: FlowIDSource
    /// The NAT's limits on new flows, shared with its other parts.
    private let admission: FlowAdmission
    private var flows: [FlowKey: FlowID] = [:]
    private var entries: [FlowID: TCPFlow] = [:]
    private var owingAcknowledgment: Set<FlowID> = []
    private var wantingTurn: Set<FlowID> = []
    /// The flows `runTurns` is giving a turn: `wantingTurn`'s set swapped
    /// out, so that both keep their storage.
    private var turning: Set<FlowID> = []
    /// Flows that want a turn but whose guest's port is blocked, by port.
    private var parked: [PortID: Set<FlowID>] = [:]
    private(set) var opened = 0

    init(context: TCPContext, host: NATHost, ids: FlowIDSource, admission: FlowAdmission) {
        self.admission = admission
        self.context = context
        self.host = host
        self.ids = ids
    }

    var count: Int { entries.count }
    var hasTurnsPending: Bool { !wantingTurn.isEmpty }

    /// Flows by state name, for `/stats`.
    var states: [String: Int] {
        entries.values.reduce(into: [:]) { $0[$1.stateName, default: 0] += 1 }
    }

    /// Whether no live flow holds `key` (a new one, or a port forward's, may use it).
    func isFree(_ key: FlowKey) -> Bool { flows[key] == nil }

    /// Takes a segment from the guest; `target` is where the host socket
    /// connects for a new flow. Returns a drop reason when it was refused.
    func receive(_ segment: TCPView, key: FlowKey, link: GuestLink, target: (IPAddress, UInt16)?,
                 now: ContinuousClock.Instant) -> DropReason? {
        let flags = segment.flags
        if let id = flows[key], let flow = entries[id] {
            if flow.phase == .timeWait, flags.contains(.syn), !flags.contains(.ack) {
                remove(id)
            } else {
                if flow.link != link {
                    // The address is bound to this port; the flow follows only its own guest's MAC.
                    guard flow.link.mac == link.mac else {
                        if !flags.contains(.rst) { refuse(segment, key: key, link: link) }
                        return .flowOwner
                    }
                    relink(id, flow, to: link)
                }
                flow.receive(segment, now: now)
                settle(id, flow)
                return nil
            }
        }
        guard flags.contains(.syn), !flags.contains(.ack), !flags.contains(.rst), let target else {
            if !flags.contains(.rst) { refuse(segment, key: key, link: link) }
            return .noFlow
        }
        if let refusal = admission.refusal(.tcp, port: link.port) {
            refuse(segment, key: key, link: link)
            return refusal
        }
        let id = ids.take()
        let flow: TCPFlow
        switch host.connectTCP(id, to: target.0, port: target.1) {
        case .noSocket:
            refuse(segment, key: key, link: link)
            return .hostSocket
        case .connected(let socket):
            flow = open(segment, key: key, link: link, socket: socket, id: id, now: now)
            flow.hostConnected(now: now)
        case .connecting(let socket):
            flow = open(segment, key: key, link: link, socket: socket, id: id, now: now)
        case .failed(let socket, let error):
            flow = open(segment, key: key, link: link, socket: socket, id: id, now: now)
            flow.hostConnectFailed(error)
        }
        settle(id, flow)
        return nil
    }

    /// Files a new flow for a guest's SYN.
    private func open(_ syn: TCPView, key: FlowKey, link: GuestLink, socket: FlowSocket, id: FlowID,
                      now: ContinuousClock.Instant) -> TCPFlow {
        let flow = TCPFlow(guestSYN: syn, key: key, link: link, socket: socket, context: context, now: now)
        add(flow, id: id)
        return flow
    }

    /// Opens a flow for a guest's SYN to a service of the gateway itself,
    /// whose host end the host connects to the service at once. Returns a
    /// drop reason when it was refused.
    func openService(_ service: GatewayService, _ segment: TCPView, key: FlowKey, link: GuestLink,
                     now: ContinuousClock.Instant) -> DropReason? {
        if let refusal = admission.refusal(.tcp, port: link.port) {
            refuse(segment, key: key, link: link)
            return refusal
        }
        let id = ids.take()
        guard let socket = host.openService(service, id, port: link.port, guest: key.guest) else {
            refuse(segment, key: key, link: link)
            return .hostSocket
        }
        let flow = open(segment, key: key, link: link, socket: socket, id: id, now: now)
        flow.hostConnected(now: now)
        settle(id, flow)
        return nil
    }

    /// Opens a flow toward the guest for a connection the host accepted (a
    /// port forward's, a check's); its id, or nil when it was refused (and
    /// the connection discarded).
    @discardableResult
    func connect(_ connection: HostConnection, to key: FlowKey, link: GuestLink, now: ContinuousClock.Instant) -> FlowID? {
        guard flows[key] == nil, admission.refusal(.tcp, port: nil) == nil else {
            host.discard(connection)
            return nil
        }
        let id = ids.take()
        guard let socket = host.adoptTCP(connection, id) else { return nil }
        let flow = TCPFlow(connectingTo: key, link: link, socket: socket, context: context, now: now)
        add(flow, id: id)
        return id
    }

    /// Calls `report` once the handshake of flow `id` (opened by `connect`)
    /// ends: open when the guest answered the SYN, refused on its RST.
    func watchHandshake(_ id: FlowID, report: @escaping (TCPHandshakeOutcome) -> Void) {
        handshakeWatchers[id] = report
    }

    /// Those waiting for the end of a flow's handshake (`watchHandshake`).
    private var handshakeWatchers: [FlowID: (TCPHandshakeOutcome) -> Void] = [:]

    /// The host socket of flow `id` is ready: a connect finished, bytes
    /// (or the end of the stream) arrived, or room opened to write.
    func hostSocketReady(_ id: FlowID, readable: Bool, writable: Bool, now: ContinuousClock.Instant) {
        guard let flow = entries[id] else { return }
        if flow.phase == .connecting {
            let result = flow.socket.finishConnect()
            if result == 0 {
                flow.hostConnected(now: now)
            } else {
                flow.hostConnectFailed(result)
            }
        } else {
            if writable { flow.hostWritable(now: now) }
            if readable { flow.hostReadable(now: now) }
        }
        settle(id, flow)
    }

    /// After a batch: the guest data gathered written, and the ACKs owed.
    func endBatch(now: ContinuousClock.Instant) {
        guard !owingAcknowledgment.isEmpty else { return }
        for id in owingAcknowledgment { entries[id]?.flushAcknowledgment() }
        owingAcknowledgment.removeAll(keepingCapacity: true)
    }

    /// Another turn for the flows with more to send, or more to look for.
    func runTurns(now: ContinuousClock.Instant) {
        guard !wantingTurn.isEmpty else { return }
        swap(&wantingTurn, &turning)
        for id in turning {
            guard let flow = entries[id] else { continue }
            flow.pump(now: now)
            settle(id, flow)
        }
        turning.removeAll(keepingCapacity: true)
    }

    /// A guest's port drained its backlog: flows parked on it get their turn back.
    func backlogDrained(_ port: PortID) {
        wantingTurn.formUnion(parked.removeValue(forKey: port) ?? [])
    }

    /// Runs due timers and forgets closed flows; ends the flows of guests
    /// that left and did not come back within the grace.
    func tick(now: ContinuousClock.Instant) {
        for (id, flow) in entries {
            if let deadline = flow.deadline, deadline <= now {
                flow.tick(now: now)
                settle(id, flow)
            }
            if let left = orphans[id], now - left >= Self.reconnectGrace {
                if flow.phase != .closed, endedWhileAwayCount < Self.endedWhileAwayLimit {
                    endedWhileAway[flow.link.mac, default: []].append((flow.key, flow.oldestUnacknowledged))
                    endedWhileAwayCount += 1
                }
                flow.abort(resetGuest: false, because: "the guest went away")
                settle(id, flow)
            }
        }
    }

    /// How long the flows of a guest that disconnected wait for it to come
    /// back (a forwarder reconnecting keeps its connections).
    static let reconnectGrace: Duration = .seconds(10)
    /// Flows whose guest's port went away, and when.
    private var orphans: [FlowID: ContinuousClock.Instant] = [:]
    /// Flows ended because their guest stayed away past the grace, by its
    /// MAC, with the sequence number an RST to the guest begins at: when the
    /// guest comes back it is told, so that a connection it only reads from
    /// does not wait for ever.
    private var endedWhileAway: [MACAddress: [(key: FlowKey, sequence: UInt32)]] = [:]
    private var endedWhileAwayCount = 0
    static let endedWhileAwayLimit = 4096

    /// A guest's port went away: its flows wait for it on another port.
    func detach(_ port: PortID, now: ContinuousClock.Instant) {
        for (id, flow) in entries where flow.link.port == port { orphans[id] = now }
        parked[port] = nil
    }

    /// The binding of `address` moved to `link`'s port: the flows of that
    /// guest (same address and MAC) left behind on a port that is gone
    /// follow it and go on at once, so a flow that only the host sends on
    /// resumes too (or is reset by the guest, if it forgot the connection).
    func follow(_ address: IPAddress, to link: GuestLink, now: ContinuousClock.Instant) {
        for (id, flow) in entries where orphans[id] != nil && flow.key.guest == address && flow.link.mac == link.mac {
            relink(id, flow, to: link)
            flow.resume(now: now)
            settle(id, flow)
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
    private func relink(_ id: FlowID, _ flow: TCPFlow, to link: GuestLink) {
        admission.moved(.tcp, from: flow.link.port, to: link.port)
        flow.link = link
        orphans[id] = nil
    }

    /// Files a flow after an event: owed ACKs and turns noted, closed flows removed.
    private func settle(_ id: FlowID, _ flow: TCPFlow) {
        if flow.phase != .synSent, let report = handshakeWatchers.removeValue(forKey: id) {
            switch flow.phase {
            case .closed: report(flow.endReason.map { .failed($0) } ?? .refused)
            default: report(.open)
            }
        }
        if flow.phase == .closed {
            remove(id)
            return
        }
        if flow.needsFlush { owingAcknowledgment.insert(id) }
        if flow.wantsTurn {
            if context.ports.isBacklogged(flow.link.port) {
                parked[flow.link.port, default: []].insert(id)
            } else {
                wantingTurn.insert(id)
            }
        }
    }

    /// Files a new flow under its key and its guest.
    private func add(_ flow: TCPFlow, id: FlowID) {
        flows[flow.key] = id
        entries[id] = flow
        opened += 1
        admission.opened(.tcp, port: flow.link.port)
    }

    private func remove(_ id: FlowID) {
        guard let flow = entries.removeValue(forKey: id) else { return }
        admission.closed(.tcp, port: flow.link.port)
        orphans[id] = nil
        handshakeWatchers.removeValue(forKey: id)?(.failed(flow.endReason ?? "the flow was removed"))
        if let reason = flow.endReason { host.report(.flowEnded(flow.key, reason: reason)) }
        flow.abort(resetGuest: false, because: "removed")
        flow.socket.close(reset: true)
        if flows[flow.key] == id { flows[flow.key] = nil }
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
        for (id, flow) in entries {
            flow.abort(resetGuest: true, because: "the proxy is stopping")
            remove(id)
        }
    }
}
