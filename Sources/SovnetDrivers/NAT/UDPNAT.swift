// The UDP half of the NAT. Each guest 4-tuple gets a host UDP socket
// connected to the (translated) destination, so only that peer's answers
// arrive on it; answers go back to the guest from the address it wrote to,
// in IPv4 fragments when longer than the MTU. An ICMP port unreachable the
// host got (ECONNREFUSED on the connected socket) goes back to the guest as
// one. A flow ends after `idleTimeout` without traffic.
//
// Port forwards of UDP: a datagram from a host client on a forward's socket
// opens a flow toward the guest from the gateway's address and a port of its
// own; the guest's answers are sent back to that client from the forward's socket.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

final class UDPNAT {
    private struct Flow: IdleFlow {
        let key: FlowKey
        var link: GuestLink
        /// The connected socket of a guest-opened flow, or the forward's socket.
        let descriptor: Int32
        /// For a port forward: the host client to answer.
        let client: sockaddr_in?
        var lastActive: ContinuousClock.Instant
        /// The guest's last datagram's IP header and first 8 bytes, for ICMP errors.
        var quoted: [UInt8]
    }

    private let frames: GuestFrames
    private let epoll: Epoll
    private let logger: Logger
    private let warnings: WarningLimiter
    let idleTimeout: Duration
    private var table: IdleFlowTable<Flow>
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    var counters = TrafficCounters()

    init(frames: GuestFrames, epoll: Epoll, idleTimeout: Duration, admission: FlowAdmission, logger: Logger,
         warnings: WarningLimiter) {
        table = IdleFlowTable(.udp, admission: admission)
        self.frames = frames
        self.epoll = epoll
        self.idleTimeout = idleTimeout
        self.logger = logger
        self.warnings = warnings
    }

    var count: Int { table.count }

    /// A datagram from the guest; `target` is the host address for a new flow
    /// (nil: only an existing flow, such as a port forward's, may take it).
    func guest(_ ip: IPv4View, _ udp: UDPView, key: FlowKey, link: GuestLink, target: (IPv4Address, UInt16)?,
               now: ContinuousClock.Instant) -> DropReason? {
        let id: UInt64
        if let existing = table.id(of: key) {
            id = existing
        } else {
            guard let target else {
                unreachable(quoting: ip, link: link, code: ICMPv4UnreachableCode.port)
                return .noFlow
            }
            if let refusal = table.refusal(port: link.port) { return refusal }
            guard let opened = open(key: key, link: link, target: target) else { return .hostSocket }
            id = opened
        }
        guard table.entries[id] != nil else { return .noFlow }
        table.update(id) { flow in
            flow.lastActive = now
            flow.link.offload = link.offload
            flow.quoted.removeAll(keepingCapacity: true)
            flow.quoted.append(contentsOf: ip.bytes.prefix(ip.headerLength + 8))
        }
        let flow = table.entries[id]!
        counters.packetsFromGuest += 1
        counters.bytesFromGuest += udp.payload.count
        let payload = udp.payload
        let sent: Int
        if var client = flow.client {
            sent = withUnsafePointer(to: &client) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(flow.descriptor, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT), $0,
                           socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        } else {
            sent = send(flow.descriptor, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT))
        }
        if sent < 0, errno == ECONNREFUSED {
            unreachable(quoting: ip, link: link, code: ICMPv4UnreachableCode.port)
        }
        return nil
    }

    private func open(key: FlowKey, link: GuestLink, target: (IPv4Address, UInt16)) -> UInt64? {
        guard case .success(let fd) = InetAddress.socket(SOCK_DGRAM) else {
            warnings.warning("udp-socket", "UDP \(key): no host socket: \(String(cString: strerror(errno)))")
            return nil
        }
        let id = table.reserveID()
        let result = InetAddress.connect(fd, target.0, target.1)
        guard result == 0, (try? epoll.add(fd, [.readable], token: LoopToken.udpFlow(id).rawValue)) != nil else {
            logger.debug("UDP \(key): connect \(target.0):\(target.1): \(String(cString: strerror(result)))")
            close(fd)
            return nil
        }
        table.insert(Flow(key: key, link: link, descriptor: fd, client: nil, lastActive: .now, quoted: []), id: id)
        return id
    }

    /// A datagram a host client sent to a UDP port forward, for `key` (the
    /// guest's address and port, the gateway and a port chosen for the client).
    func forwarded(_ payload: UnsafeRawBufferPointer, from client: sockaddr_in, listener: Int32, key: FlowKey,
                   link: GuestLink, now: ContinuousClock.Instant) {
        if let id = table.id(of: key) {
            table.update(id) { $0.lastActive = now }
        } else {
            guard table.refusal(port: nil) == nil else { return }
            let flow = Flow(key: key, link: link, descriptor: listener, client: client, lastActive: now, quoted: [])
            table.insert(flow, id: table.reserveID())
        }
        toGuest(key: key, link: link, payload: payload)
    }

    /// The flow a forward's client already has, if any.
    func forwardKey(client: sockaddr_in, listener: Int32) -> FlowKey? {
        table.entries.values.first { $0.descriptor == listener && $0.client.map { Self.same($0, client) } == true }?.key
    }

    func isFree(_ key: FlowKey) -> Bool { table.id(of: key) == nil }

    private static func same(_ a: sockaddr_in, _ b: sockaddr_in) -> Bool {
        a.sin_addr.s_addr == b.sin_addr.s_addr && a.sin_port == b.sin_port
    }

    /// Answers waiting on a flow's host socket.
    func event(_ id: UInt64, now: ContinuousClock.Instant) {
        guard let flow = table.entries[id], flow.client == nil else { return }
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(flow.descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count < 0 {
                if errno == ECONNREFUSED { unreachable(flow: flow) }
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED { break }
                logger.debug("UDP \(flow.key): \(String(cString: strerror(errno)))")
                break
            }
            table.update(id) { $0.lastActive = now }
            buffer.withUnsafeBytes { toGuest(key: flow.key, link: flow.link, payload: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
    }

    private func toGuest(key: FlowKey, link: GuestLink, payload: UnsafeRawBufferPointer) {
        counters.packetsToGuest += 1
        counters.bytesToGuest += payload.count
        frames.appendUDP(link, source: key.remote, sourcePort: key.remotePort, destination: key.guest,
                         destinationPort: key.guestPort, payload: payload)
    }

    private func unreachable(flow: Flow) {
        guard !flow.quoted.isEmpty else { return }
        flow.quoted.withUnsafeBytes { quoted in
            frames.appendICMP(flow.link, source: flow.key.remote, destination: flow.key.guest,
                              header: ICMPv4Header(type: .destinationUnreachable, code: ICMPv4UnreachableCode.port), body: quoted)
        }
    }

    private func unreachable(quoting ip: IPv4View, link: GuestLink, code: UInt8) {
        frames.appendICMP(link, source: ip.destination, destination: ip.source,
                          header: ICMPv4Header(type: .destinationUnreachable, code: code),
                          body: UnsafeRawBufferPointer(rebasing: ip.bytes.prefix(ip.headerLength + 8)))
    }

    /// Ends flows idle for longer than the timeout.
    func tick(now: ContinuousClock.Instant) {
        for id in table.idle(at: now, for: idleTimeout) { remove(id) }
    }

    /// Ends the flows of a guest's port that went away.
    func detach(_ port: PortID) {
        for id in table.flows(on: port) { remove(id) }
    }

    /// Ends the flows of a forward's socket (when it is unexposed).
    func removeFlows(listener: Int32) {
        for (id, flow) in table.entries where flow.client != nil && flow.descriptor == listener { remove(id) }
    }

    private func remove(_ id: UInt64) {
        guard let flow = table.remove(id) else { return }
        if flow.client == nil {
            epoll.remove(flow.descriptor)
            close(flow.descriptor)
        }
    }

    func closeAll() {
        for id in Array(table.entries.keys) { remove(id) }
    }
}
