// ICMP and ICMPv6 echo through the NAT core, on the host's unprivileged ping
// sockets (SOCK_DGRAM, IPPROTO_ICMP or IPPROTO_ICMPV6; both allowed by
// net.ipv4.ping_group_range). Each
// guest echo identifier toward one destination gets a socket connected to
// the (translated) destination; the kernel picks the identifier on the
// wire, and replies are rewritten back to the guest's identifier, from the
// address the guest pinged. When ping sockets are not allowed, echo
// requests are dropped and counted: no reply is ever made up.
import SovnetWire

final class EchoFlowTable {
    private struct Flow: IdleFlow {
        let key: FlowKey
        let link: GuestLink
        var lastActive: ContinuousClock.Instant
    }

    private let frames: GuestFrames
    private unowned let host: NATHost
    private let ids: FlowIDSource
    private let idleTimeout: Duration
    private var table: IdleFlowTable<Flow>
    var counters = TrafficCounters()

    init(_ context: DatagramFlowContext) {
        table = IdleFlowTable(.icmp, admission: context.admission)
        (frames, host, ids, idleTimeout) = (context.frames, context.host, context.ids, context.idleTimeout)
    }

    var count: Int { table.count }

    /// Sends a guest's echo request (`message`, ICMP or ICMPv6 by the
    /// addresses' family, with `identifier`; `quote` its packet's start, for
    /// an unreachable) on to `target`; a drop reason when refused.
    func send(_ message: UnsafeRawBufferPointer, identifier: UInt16, quote: UnsafeRawBufferPointer, from guest: IPAddress,
              to remote: IPAddress, link: GuestLink, target: IPAddress, now: ContinuousClock.Instant) -> DropReason? {
        let key = FlowKey(guest: guest, guestPort: identifier, remote: remote, remotePort: 0)
        let id: FlowID
        if let existing = table.id(of: key) {
            id = existing
            table.update(id) { $0.lastActive = now }
        } else {
            if let refusal = table.refusal(port: link.port) { return refusal }
            let opened = ids.take()
            switch host.openDatagram(opened, .echo, to: target, port: 0) {
            case .opened: break
            case .notPermitted: return .pingNotPermitted
            case .failed(let error):
                if let reason = TCPFlow.unreachableReason(error) {
                    frames.appendUnreachable(link, source: remote, destination: guest, reason, quoting: quote)
                }
                return .hostSocket
            }
            table.insert(Flow(key: key, link: link, lastActive: now), id: opened)
            id = opened
        }
        counters.packetsFromGuest += 1
        counters.bytesFromGuest += max(0, message.count - 8)
        _ = host.send(message, on: id)
        return nil
    }

    /// A message that arrived on a flow's socket: echo replies go to the guest.
    func receive(_ message: UnsafeRawBufferPointer, on id: FlowID, now: ContinuousClock.Instant) {
        guard let flow = table.entries[id], message.count >= 8 else { return }
        table.update(id) { $0.lastActive = now }
        switch (flow.key.remote, flow.key.guest) {
        case (.v4(let remote), .v4(let guest)):
            guard let reply = try? ICMPv4View(message, verifyChecksum: false), reply.type == .echoReply else { return }
            count(reply.body)
            frames.appendICMP(flow.link, source: remote, destination: guest,
                              header: .echo(.echoReply, identifier: flow.key.guestPort, sequence: reply.sequence),
                              body: reply.body)
        default:
            guard let reply = try? ICMPv6View(message, source: nil, destination: nil), reply.type == .echoReply,
                  let echo = try? reply.echo() else { return }
            let body = UnsafeRawBufferPointer(rebasing: message[8...])
            count(body)
            frames.appendICMPv6(flow.link, source: flow.key.remote.asIPv6, destination: flow.key.guest.asIPv6,
                                type: .echoReply, header: UInt32(flow.key.guestPort) << 16 | UInt32(echo.sequence), body: body)
        }
    }

    private func count(_ reply: UnsafeRawBufferPointer) {
        counters.packetsToGuest += 1
        counters.bytesToGuest += reply.count
    }

    /// Ends the flows of a guest's port that went away.
    func detach(_ port: PortID) {
        for id in table.flows(on: port) { remove(id) }
    }

    func tick(now: ContinuousClock.Instant) {
        for id in table.idle(at: now, for: idleTimeout) { remove(id) }
    }

    private func remove(_ id: FlowID) {
        guard table.remove(id) != nil else { return }
        host.closeDatagram(id)
    }

    func closeAll() {
        for id in Array(table.entries.keys) { remove(id) }
    }
}
