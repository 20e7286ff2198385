// The host end of a NATed TCP flow: a non-blocking TCP socket registered
// with the proxy's epoll, edge-triggered for reading. Bytes for the guest are
// read with MSG_PEEK and SO_PEEK_OFF (each peek advances the offset; a
// rewind sets it back to the oldest unacknowledged byte) and discarded with
// MSG_TRUNC once the guest acknowledged them. Kernels before 6.9 have no
// SO_PEEK_OFF for TCP: there the socket peeks from the start of the queue
// into a discard buffer first.
import CSovnetShim
import Glibc
import SovnetCore
import SovnetLink

final class HostTCPSocket: FlowSocket {
    private(set) var descriptor: Int32
    let token: UInt64
    private let epoll: Epoll
    private var watchingWritable = false
    private var registered = false
    /// SO_PEEK_OFF works on this socket; otherwise `peeked` tracks the offset.
    private var peekOffset = true
    private var peeked = 0
    /// Whether MSG_TRUNC discards bytes without a buffer (TCP does).
    private var truncates = true
    /// The peer's FIN arrived (EPOLLRDHUP); the fallback peek needs it to see the end.
    var peerClosed = false
    /// Room in the send buffer: as last measured, less what was written since.
    private var space = 0
    /// What the last measurement found, and in which loop turn (`clock`);
    /// nil when the next look must measure.
    private var measuredSpace = 0
    private var spaceEpoch: UInt64?
    private let clock: LoopEpoch
    /// Called once the socket is closed.
    private let closed: () -> Void

    init(descriptor: Int32, token: UInt64, epoll: Epoll, clock: LoopEpoch, closed: @escaping () -> Void = {}) {
        self.descriptor = descriptor
        self.token = token
        self.epoll = epoll
        self.clock = clock
        self.closed = closed
    }

    /// Watches for the end of a non-blocking connect.
    func watchConnect() throws {
        try epoll.add(descriptor, [.writable], token: token)
        registered = true
    }

    /// Switches to watching for data, once connected or accepted.
    func watchData() throws {
        peekOffset = InetAddress.setOption(descriptor, SOL_SOCKET, SO_PEEK_OFF, 0)
        _ = InetAddress.setOption(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        if registered {
            try epoll.modify(descriptor, Self.dataEvents, token: token)
        } else {
            try epoll.add(descriptor, Self.dataEvents, token: token)
            registered = true
        }
    }

    private static let dataEvents: Epoll.Events = [.readable, .peerClosed, .edgeTriggered]

    func finishConnect() -> Int32 {
        let result = InetAddress.option(descriptor, SOL_SOCKET, SO_ERROR) ?? errno
        guard result == 0 else { return result }
        return (try? watchData()) != nil ? 0 : ENOMEM
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let sent = send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
        if sent >= 0 {
            space -= sent
            return sent
        }
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : nil
    }

    func peek(into buffer: UnsafeMutableRawBufferPointer) -> PeekResult {
        let count: Int
        if peekOffset {
            count = recv(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        } else {
            // More bytes sent and unacknowledged than the discard buffer holds:
            // the rest waits until the guest acknowledges some.
            guard peeked <= DiscardBuffer.shared.count else { return .outOfReach }
            count = peekPastOffset(into: buffer)
        }
        if count > 0 { return .data(count) }
        if count == 0 { return .endOfStream }
        return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .failed(errno)
    }

    /// Peeks `peeked` bytes into the discard buffer and the rest into `buffer`.
    private func peekPastOffset(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let skip = peeked
        var vectors = [iovec(iov_base: DiscardBuffer.shared.baseAddress, iov_len: skip),
                       iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)]
        var message = msghdr()
        let received = vectors.withUnsafeMutableBufferPointer { vectors in
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = 2
            return recvmsg(descriptor, &message, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        }
        guard received >= 0 else { return -1 }
        let fresh = received - skip
        if fresh <= 0 {
            // Everything queued was sent already: that is the end only if the peer closed.
            if received == 0 || peerClosed { return 0 }
            errno = EAGAIN
            return -1
        }
        peeked += fresh
        return fresh
    }

    func consume(_ count: Int) {
        var left = count
        while left > 0 {
            // TCP discards with MSG_TRUNC and no buffer; other stream sockets
            // (the socketpairs of the gateway's own services) read into one.
            var discarded = truncates ? recv(descriptor, nil, left, Int32(MSG_TRUNC) | Int32(MSG_DONTWAIT)) : -1
            if discarded < 0 {
                truncates = false
                discarded = recv(descriptor, DiscardBuffer.shared.baseAddress, min(left, DiscardBuffer.shared.count),
                                 Int32(MSG_DONTWAIT))
            }
            guard discarded > 0 else { break }
            left -= discarded
        }
        if !peekOffset { peeked = max(0, peeked - count) }
    }

    func rewind() {
        if peekOffset {
            _ = InetAddress.setOption(descriptor, SOL_SOCKET, SO_PEEK_OFF, 0)
        } else {
            peeked = 0
        }
    }

    /// The room, measured again (at most once a loop turn) when the writes
    /// since took half of it or `spaceRefreshTurns` turns have gone by: a
    /// round trip of small writes measures once in many, where two system
    /// calls per ACK were a tenth of its time. An estimate that is too high
    /// costs a short write, which the flow keeps (`unwritten`); one too low
    /// a smaller window until the next measurement.
    var writeSpace: Int {
        let turn = clock.value
        if spaceEpoch.map({ $0 != turn && (space < max(1, measuredSpace / 2) || turn &- $0 >= Self.spaceRefreshTurns) }) ?? true {
            spaceEpoch = turn
            measuredSpace = measureSpace()
            space = measuredSpace
        }
        return max(0, space)
    }

    /// Loop turns after which the room is measured again in any case.
    static let spaceRefreshTurns: UInt64 = 64

    /// The bytes a write would take now: the send buffer's free memory
    /// (SO_MEMINFO: sndbuf less what is queued, overhead included) scaled by
    /// the queue's ratio of data to memory (TIOCOUTQ over wmem_queued), or
    /// half of it while too little is queued to tell.
    private func measureSpace() -> Int {
        // SK_MEMINFO_VARS is 9 counters; SNDBUF is the fourth, WMEM_QUEUED the sixth.
        var info: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
        var length = socklen_t(MemoryLayout.size(ofValue: info))
        guard getsockopt(descriptor, SOL_SOCKET, SO_MEMINFO, &info, &length) == 0 else { return 0 }
        let buffer = Int(info.3), queuedMemory = Int(info.5)
        let free = max(0, buffer - queuedMemory)
        var queued: Int32 = 0
        _ = ioctl(descriptor, UInt(TIOCOUTQ), &queued)
        guard queuedMemory >= 16 * 1024, queued > 0 else { return free / 2 }
        return free * min(Int(queued), queuedMemory) / queuedMemory
    }

    func shutdownWrite() {
        shutdown(descriptor, Int32(SHUT_WR))
    }

    func wantWritable(_ wanted: Bool) {
        // Asked to stop watching: room opened, so the estimate is stale.
        if !wanted { spaceEpoch = nil }
        guard wanted != watchingWritable, descriptor >= 0 else { return }
        watchingWritable = wanted
        try? epoll.modify(descriptor, wanted ? Self.dataEvents.union(.writable) : Self.dataEvents, token: token)
    }

    func close(reset: Bool) {
        guard descriptor >= 0 else { return }
        if reset {
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        epoll.remove(descriptor)
        Glibc.close(descriptor)
        descriptor = -1
        closed()
    }
}

/// Counts the proxy loop's turns, so per-turn caches know when they are stale.
final class LoopEpoch {
    private(set) var value: UInt64 = 0
    func advance() { value &+= 1 }
}

/// Where peeks land that skip bytes already sent, on kernels without SO_PEEK_OFF for TCP.
enum DiscardBuffer {
    nonisolated(unsafe) static let shared = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 20, alignment: 16)
}
