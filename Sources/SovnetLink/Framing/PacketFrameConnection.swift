// A framed connection over a socket that keeps message boundaries: the
// `bess` framing (SOCK_SEQPACKET, connected) and the `vfkit` framing
// (SOCK_DGRAM). One recvmmsg(2) or sendmmsg(2) moves up to 32 frames.
//
// A datagram cannot put the stream out of step, so a bad one (too short,
// too long) is dropped and counted rather than closing the connection.
// vfkit's serving side is not connected: it learns its peer from the first
// datagram, which may be the 4-byte `VFKT` greeting, and answers there.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// A connection over a seqpacket or datagram socket.
public final class PacketFrameConnection: FrameEndpoint {
    public let framing: Framing
    public let readDescriptor: Int32
    public let maximumFrameLength: Int
    /// Frames dropped instead of delivered.
    public private(set) var drops = DropCounters()
    private let learnsPeer: Bool
    private var peer: sockaddr_storage?
    private var peerLength: socklen_t = 0
    private var closed = false
    private let logger: Logger

    /// Frames per system call.
    public static let batch = 32
    private let slots: UnsafeMutableBufferPointer<sovnet_mmsg>
    private let buffers: UnsafeMutableRawPointer
    private let slotSize: Int

    /// - Parameter learnsPeer: for an unconnected datagram socket, reply to the
    ///   address the first datagram came from.
    public init(framing: Framing, descriptor: Int32, maximumFrameLength: Int, learnsPeer: Bool = false,
                logger: Logger = Logger(label: "sovnet.link")) {
        self.framing = framing
        readDescriptor = descriptor
        self.maximumFrameLength = maximumFrameLength
        self.learnsPeer = learnsPeer
        self.logger = logger
        // One spare byte per slot tells an oversized datagram from a maximal one.
        slotSize = maximumFrameLength + 1
        slots = .allocate(capacity: Self.batch)
        buffers = .allocate(byteCount: slotSize * Self.batch, alignment: 16)
    }

    deinit {
        close()
        slots.deallocate()
        buffers.deallocate()
    }

    /// Whether a vfkit peer has been learned (always true when connected).
    public var hasPeer: Bool { !learnsPeer || peer != nil }

    public func receive(_ body: (UnsafeRawBufferPointer) throws(LinkError) -> Void) throws(LinkError) -> ReceiveStatus {
        for index in 0..<Self.batch {
            slots[index].iov = iovec(iov_base: buffers + index * slotSize, iov_len: slotSize)
            slots[index].address_length = 0
        }
        var count: Int32
        repeat {
            count = sovnet_recvmmsg(readDescriptor, slots.baseAddress, UInt32(Self.batch), Int32(MSG_WAITFORONE))
        } while count < 0 && errno == EINTR
        if count < 0 {
            if errno == EAGAIN { return .wouldBlock }
            throw LinkError.lastError("recvmmsg")
        }
        if count == 0 { return .closed }
        var delivered = 0
        for index in 0..<Int(count) {
            let length = Int(slots[index].length)
            let bytes = UnsafeRawBufferPointer(start: buffers + index * slotSize, count: length)
            if learnsPeer, peer == nil, slots[index].address_length > 0 {
                peer = slots[index].address
                peerLength = slots[index].address_length
                logger.info("\(framing) peer connected")
            }
            if framing == .vfkit, bytes.elementsEqual(Framing.vfkitMagic) { continue }
            if length == 0 && framing == .bess { return .closed }
            if length > maximumFrameLength {
                drops.oversized += 1
                continue
            }
            if length < 14 {
                drops.runt += 1
                continue
            }
            delivered += 1
            try body(bytes)
        }
        return .frames(delivered)
    }

    public func send(_ frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        _ = try transmit(frames, waiting: true)
    }

    /// Sends in batches of `sendmmsg`; without `waiting`, stops when the
    /// socket is full and returns how many frames went.
    private func transmit(_ frames: [UnsafeRawBufferPointer], waiting: Bool) throws(LinkError) -> Int {
        guard hasPeer else {
            drops.noPeer += frames.count
            return frames.count
        }
        var index = 0
        while index < frames.count {
            let batch = min(frames.count - index, Self.batch)
            for slot in 0..<batch {
                let frame = frames[index + slot]
                guard frame.count <= maximumFrameLength else {
                    throw LinkError.framing(.oversizedFrame(length: frame.count, maximum: maximumFrameLength))
                }
                slots[slot].iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
                if let peer {
                    slots[slot].address = peer
                    slots[slot].address_length = peerLength
                } else {
                    slots[slot].address_length = 0
                }
            }
            let flags = Int32(MSG_NOSIGNAL) | (waiting ? 0 : Int32(MSG_DONTWAIT))
            let sent = sovnet_sendmmsg(readDescriptor, slots.baseAddress, UInt32(batch), flags)
            if sent < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN, ENOBUFS:
                    guard waiting else { return index }
                    try Descriptor.waitWritable(readDescriptor)
                default: throw LinkError.lastError("sendmmsg")
                }
                continue
            }
            index += Int(sent)
        }
        return index
    }

    /// Datagrams the kernel has not taken yet.
    private var backlog: [[UInt8]] = []
    private var backlogBytes = 0
    public var backlogLimit = defaultBacklogLimit
    public var hasBacklog: Bool { !backlog.isEmpty }
    public var sendDescriptor: Int32 { readDescriptor }

    public func enqueue(_ frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        let sent = hasBacklog ? 0 : try transmit(frames, waiting: false)
        for frame in frames[sent...] {
            guard backlogBytes + frame.count <= backlogLimit else {
                drops.backlogFull += 1
                continue
            }
            backlog.append(Array(frame))
            backlogBytes += frame.count
        }
        if sent == 0, !frames.isEmpty { try flushBacklog() }
    }

    public func flushBacklog() throws(LinkError) {
        while hasBacklog {
            let chunk = Array(backlog.prefix(Self.batch))
            let sent = try chunk.withUnsafeBufferPointers { (frames) throws(LinkError) in try transmit(frames, waiting: false) }
            backlogBytes -= chunk[..<sent].reduce(0) { $0 + $1.count }
            backlog.removeFirst(sent)
            if sent < chunk.count { return }
        }
    }

    /// Sends vfkit's greeting, so a serving side learns this socket's address.
    func sendGreeting() throws(LinkError) {
        try Framing.vfkitMagic.withRawBytes { (raw) throws(LinkError) in
            guard systemSend(readDescriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL)) == raw.count else {
                throw LinkError.lastError("send VFKT")
            }
        }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        systemClose(readDescriptor)
    }
}
