// ICMP echo through the NAT, on unprivileged ping sockets (SOCK_DGRAM,
// IPPROTO_ICMP; allowed by net.ipv4.ping_group_range). Each guest echo
// identifier toward one destination gets a socket connected to the
// (translated) destination; the kernel picks the identifier on the wire, and
// replies are rewritten back to the guest's identifier, from the address the
// guest pinged. When ping sockets are not allowed, that is logged once and
// echo requests are dropped and counted: no reply is ever made up.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

final class PingNAT {
    /// Why no socket could be opened.
    private struct Refusal: Error {
        let reason: DropReason
    }

    private struct Flow: IdleFlow {
        let key: FlowKey
        let link: GuestLink
        let descriptor: Int32
        var lastActive: ContinuousClock.Instant
    }

    private let frames: GuestFrames
    private let epoll: Epoll
    private let logger: Logger
    let idleTimeout: Duration
    private var table: IdleFlowTable<Flow>
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    private var refusalLogged = false
    var counters = TrafficCounters()

    init(frames: GuestFrames, epoll: Epoll, idleTimeout: Duration, admission: FlowAdmission, logger: Logger) {
        table = IdleFlowTable(.icmp, admission: admission)
        self.frames = frames
        self.epoll = epoll
        self.idleTimeout = idleTimeout
        self.logger = logger
    }

    var count: Int { table.count }

    /// An echo request from the guest to `target`.
    func guest(_ icmp: ICMPv4View, from guest: IPv4Address, to remote: IPv4Address, link: GuestLink,
               target: IPv4Address, now: ContinuousClock.Instant) -> DropReason? {
        let key = FlowKey(guest: guest, guestPort: icmp.identifier, remote: remote, remotePort: 0)
        let id: UInt64
        if let existing = table.id(of: key) {
            id = existing
        } else {
            if let refusal = table.refusal(port: link.port) { return refusal }
            switch open(key: key, link: link, target: target, now: now) {
            case .success(let opened): id = opened
            case .failure(let refusal): return refusal.reason
            }
        }
        guard let flow = table.entries[id] else { return .noFlow }
        table.update(id) { $0.lastActive = now }
        counters.packetsFromGuest += 1
        counters.bytesFromGuest += icmp.body.count
        let bytes = icmp.bytes
        if send(flow.descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT)) < 0 {
            logger.debug("ping \(key): \(String(cString: strerror(errno)))")
        }
        return nil
    }

    private func open(key: FlowKey, link: GuestLink, target: IPv4Address,
                      now: ContinuousClock.Instant) -> Result<UInt64, Refusal> {
        let fd: Int32
        switch InetAddress.socket(SOCK_DGRAM, Int32(IPPROTO_ICMP)) {
        case .success(let descriptor): fd = descriptor
        case .failure(let error):
            if error.rawValue == EACCES || error.rawValue == EPERM {
                if !refusalLogged {
                    refusalLogged = true
                    logger.warning("ICMP echo from guests is dropped: this host does not allow ping sockets (sysctl net.ipv4.ping_group_range)")
                }
                return .failure(Refusal(reason: .pingNotPermitted))
            }
            return .failure(Refusal(reason: .hostSocket))
        }
        let id = table.reserveID()
        guard InetAddress.connect(fd, target, 0) == 0,
              (try? epoll.add(fd, [.readable], token: LoopToken.pingFlow(id).rawValue)) != nil else {
            close(fd)
            return .failure(Refusal(reason: .hostSocket))
        }
        table.insert(Flow(key: key, link: link, descriptor: fd, lastActive: now), id: id)
        return .success(id)
    }

    /// Replies waiting on a flow's socket.
    func event(_ id: UInt64, now: ContinuousClock.Instant) {
        guard let flow = table.entries[id] else { return }
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(flow.descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count >= ICMPv4View.headerLength else { break }
            table.update(id) { $0.lastActive = now }
            buffer.withUnsafeBytes { raw in
                guard let reply = try? ICMPv4View(UnsafeRawBufferPointer(rebasing: raw[..<count]), verifyChecksum: false),
                      reply.type == .echoReply else { return }
                counters.packetsToGuest += 1
                counters.bytesToGuest += reply.body.count
                frames.appendICMP(flow.link, source: flow.key.remote, destination: flow.key.guest,
                                  header: .echo(.echoReply, identifier: flow.key.guestPort, sequence: reply.sequence),
                                  body: reply.body)
            }
        }
    }

    /// Ends the flows of a guest's port that went away.
    func detach(_ port: PortID) {
        for id in table.flows(on: port) { remove(id) }
    }

    func tick(now: ContinuousClock.Instant) {
        for id in table.idle(at: now, for: idleTimeout) { remove(id) }
    }

    private func remove(_ id: UInt64) {
        guard let flow = table.remove(id) else { return }
        epoll.remove(flow.descriptor)
        close(flow.descriptor)
    }

    func closeAll() {
        for id in Array(table.entries.keys) { remove(id) }
    }
}
