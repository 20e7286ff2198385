// ICMP and ICMPv6 echo through the NAT core, on the host's unprivileged ping
// sockets (SOCK_DGRAM, IPPROTO_ICMP or IPPROTO_ICMPV6; both allowed by
// net.ipv4.ping_group_range). Each
// guest echo identifier toward one destination gets a socket connected to
// the (translated) destination; the kernel picks the identifier on the
// wire, and replies are rewritten back to the guest's identifier, from the
// address the guest pinged. ICMP and ICMPv6 echo messages share their
// layout (type, code, checksum, identifier, sequence, data), so where a
// translation changes the family (an IPv6 alias to an IPv4 host address)
// only the type is rewritten; the kernel sums the checksum. When ping
// sockets are not allowed, echo requests are dropped and counted: no reply
// is ever made up.
import SovnetWire

final class EchoFlowTable {
    private struct Flow: IdleFlow {
        let key: FlowKey
        let link: GuestLink
        var lastActive: ContinuousClock.Instant
        /// The host socket speaks ICMPv6.
        let hostIPv6: Bool
    }

    private let frames: GuestFrames
    private unowned let host: NATHost
    private let ids: FlowIDSource
    private let idleTimeout: Duration
    private var table: IdleFlowTable<Flow>
    /// A request rewritten to the host's family.
    private var translated: [UInt8] = []
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
            table.insert(Flow(key: key, link: link, lastActive: now, hostIPv6: target.isIPv6), id: opened)
            id = opened
        }
        counters.packetsFromGuest += 1
        counters.bytesFromGuest += max(0, message.count - 8)
        guard let flow = table.entries[id], flow.hostIPv6 != guest.isIPv6 else {
            _ = host.send(message, on: id)
            return nil
        }
        translated.removeAll(keepingCapacity: true)
        translated.append(contentsOf: message)
        translated[0] = flow.hostIPv6 ? ICMPv6Type.echoRequest.rawValue : ICMPv4Type.echoRequest.rawValue
        translated.withUnsafeBytes { _ = host.send($0, on: id) }
        return nil
    }

    /// A message that arrived on a flow's socket: echo replies go to the guest.
    func receive(_ message: UnsafeRawBufferPointer, on id: FlowID, now: ContinuousClock.Instant) {
        guard let flow = table.entries[id], message.count >= 8 else { return }
        table.update(id) { $0.lastActive = now }
        let replyType = flow.hostIPv6 ? ICMPv6Type.echoReply.rawValue : ICMPv4Type.echoReply.rawValue
        guard message[0] == replyType else { return }
        let sequence = UInt16(message[6]) << 8 | UInt16(message[7])
        let body = UnsafeRawBufferPointer(rebasing: message[8...])
        counters.packetsToGuest += 1
        counters.bytesToGuest += body.count
        switch (flow.key.remote, flow.key.guest) {
        case (.v4(let remote), .v4(let guest)):
            frames.appendICMP(flow.link, source: remote, destination: guest,
                              header: .echo(.echoReply, identifier: flow.key.guestPort, sequence: sequence), body: body)
        default:
            frames.appendICMPv6(flow.link, source: flow.key.remote.asIPv6, destination: flow.key.guest.asIPv6,
                                type: .echoReply, header: UInt32(flow.key.guestPort) << 16 | UInt32(sequence), body: body)
        }
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
