// The UDP part of the NAT core. Each guest 4-tuple gets a host UDP socket
// connected to the (translated) destination, so only that peer's answers
// arrive on it; answers go back to the guest from the address it wrote to,
// in fragments when longer than the MTU. A port unreachable the host got (a
// send or receive refused) goes back to the guest as an ICMP or ICMPv6
// message quoting the guest's last datagram. A flow ends after
// `idleTimeout` without traffic.
//
// Port forwards of UDP: a datagram from a host client on a forward's socket
// opens a flow toward the guest from the gateway's address and a port of its
// own; the guest's answers go back to that client from the forward's socket.
import SovnetWire

final class UDPFlowTable {
    private struct Flow: IdleFlow {
        let key: FlowKey
        var link: GuestLink
        /// For a port forward's flow: the forward and the host client to answer.
        let forward: ForwardClient?
        var lastActive: ContinuousClock.Instant
        /// The guest's last datagram's IP headers and first 8 bytes, for ICMP errors.
        var quoted: [UInt8]
    }

    /// A client of a UDP port forward.
    private struct ForwardClient: Hashable {
        let forward: UInt64
        let client: HostEndpoint
    }

    private let frames: GuestFrames
    private unowned let host: NATHost
    private let ids: FlowIDSource
    private let idleTimeout: Duration
    private var table: IdleFlowTable<Flow>
    private var forwardFlows: [ForwardClient: FlowID] = [:]
    var counters = TrafficCounters()

    init(_ context: DatagramFlowContext) {
        table = IdleFlowTable(.udp, admission: context.admission)
        (frames, host, ids, idleTimeout) = (context.frames, context.host, context.ids, context.idleTimeout)
    }

    var count: Int { table.count }

    func isFree(_ key: FlowKey) -> Bool { table.id(of: key) == nil }

    /// Sends a datagram from the guest; `quote` is its packet from the IP
    /// header through the UDP header, `target` the host address for a new
    /// flow (nil: only an existing flow, such as a port forward's, may take
    /// it). Returns a drop reason when it was refused.
    func send(_ udp: UDPView, quote: UnsafeRawBufferPointer, key: FlowKey, link: GuestLink, target: (IPAddress, UInt16)?,
              now: ContinuousClock.Instant) -> DropReason? {
        let id: FlowID
        if let existing = table.id(of: key) {
            id = existing
        } else {
            guard let target else {
                frames.appendUnreachable(link, source: key.remote, destination: key.guest, .port, quoting: quote)
                return .noFlow
            }
            if let refusal = table.refusal(port: link.port) { return refusal }
            let opened = ids.take()
            switch host.openDatagram(opened, .udp, to: target.0, port: target.1) {
            case .opened:
                break
            case .failed(let error):
                if let reason = TCPFlow.unreachableReason(error) {
                    frames.appendUnreachable(link, source: key.remote, destination: key.guest, reason, quoting: quote)
                }
                return .hostSocket
            case .notPermitted:
                return .hostSocket
            }
            table.insert(Flow(key: key, link: link, forward: nil, lastActive: now, quoted: []), id: opened)
            id = opened
        }
        table.update(id) { flow in
            flow.lastActive = now
            flow.link.offload = link.offload
            flow.quoted.removeAll(keepingCapacity: true)
            flow.quoted.append(contentsOf: quote)
        }
        guard let flow = table.entries[id] else { return .noFlow }
        counters.packetsFromGuest += 1
        counters.bytesFromGuest += udp.payload.count
        if let forward = flow.forward {
            host.send(udp.payload, to: forward.client, from: forward.forward)
        } else if host.send(udp.payload, on: id) == .refused {
            frames.appendUnreachable(link, source: key.remote, destination: key.guest, .port, quoting: quote)
        }
        return nil
    }

    /// A datagram a host client sent to UDP port forward `forward`, for the
    /// guest at `guest`:`port` (`link`); `freeKey` picks the gateway's port
    /// for a client new to the forward.
    func receive(_ payload: UnsafeRawBufferPointer, from client: HostEndpoint, forward: UInt64, link: GuestLink,
                 now: ContinuousClock.Instant, freeKey: () -> FlowKey?) {
        let origin = ForwardClient(forward: forward, client: client)
        let key: FlowKey
        if let id = forwardFlows[origin], let flow = table.entries[id] {
            table.update(id) { $0.lastActive = now }
            key = flow.key
        } else {
            guard table.refusal(port: nil) == nil, let free = freeKey() else { return }
            let id = ids.take()
            table.insert(Flow(key: free, link: link, forward: origin, lastActive: now, quoted: []), id: id)
            forwardFlows[origin] = id
            key = free
        }
        toGuest(key: key, link: link, payload: payload)
    }

    /// An answer that arrived on a guest flow's socket.
    func receive(_ payload: UnsafeRawBufferPointer, on id: FlowID, now: ContinuousClock.Instant) {
        guard let flow = table.entries[id], flow.forward == nil else { return }
        table.update(id) { $0.lastActive = now }
        toGuest(key: flow.key, link: flow.link, payload: payload)
    }

    /// The host reported port unreachable on a flow's socket.
    func refused(_ id: FlowID) {
        guard let flow = table.entries[id], !flow.quoted.isEmpty else { return }
        flow.quoted.withUnsafeBytes { quoted in
            frames.appendUnreachable(flow.link, source: flow.key.remote, destination: flow.key.guest, .port, quoting: quoted)
        }
    }

    private func toGuest(key: FlowKey, link: GuestLink, payload: UnsafeRawBufferPointer) {
        counters.packetsToGuest += 1
        counters.bytesToGuest += payload.count
        frames.appendUDP(link, source: key.remote, sourcePort: key.remotePort, destination: key.guest,
                         destinationPort: key.guestPort, payload: payload)
    }

    /// Ends flows idle for longer than the timeout.
    func tick(now: ContinuousClock.Instant) {
        for id in table.idle(at: now, for: idleTimeout) { remove(id) }
    }

    /// Ends the flows of a guest's port that went away.
    func detach(_ port: PortID) {
        for id in table.flows(on: port) { remove(id) }
    }

    /// Ends the flows of a forward (when it is unexposed).
    func removeFlows(forward: UInt64) {
        for (origin, id) in forwardFlows where origin.forward == forward { remove(id) }
    }

    private func remove(_ id: FlowID) {
        guard let flow = table.remove(id) else { return }
        if let origin = flow.forward {
            forwardFlows[origin] = nil
        } else {
            host.closeDatagram(id)
        }
    }

    func closeAll() {
        for id in Array(table.entries.keys) { remove(id) }
    }
}
