// A framed connection over a byte stream (unix, vsock or TCP socket, or a
// pair of pipes for stdio): the `vm`, `qemu` and `stdio` framings.
//
// Receiving is one read(2) into the decoder's buffer, which may hold many
// frames and end inside one. Sending builds one iovec pair (prefix, frame)
// per frame and writes up to 512 frames with a single sendmsg(2)/writev(2).
// The prefixes live in a buffer allocated once, so neither path allocates.
//
// `send` waits for room; `enqueue` does not: the bytes the kernel did not
// take (a frame may be cut in the middle) go to a backlog that `flushBacklog`
// writes later, so a server never blocks on one slow peer.
//
// On a serial line (`SerialLink.swift`) the connection also keeps the
// markers: the guest's end writes its head when opened and on a timer
// (`linkTimer`), the host's end answers each head it reads with its reply,
// queued behind whatever frames are already on their way.
//
// With offloads (`OffloadLink`) frames carry a virtio-net header: the
// serving side answers an offload request before anything else it sends;
// the dialling side awaits that answer (`awaitOffloadAnswer`).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import Logging

/// A connection speaking a length-prefixed framing.
public final class StreamFrameConnection: FrameEndpoint {
    public let framing: Framing
    public let decoder: FrameStreamDecoder
    public let readDescriptor: Int32
    public let writeDescriptor: Int32
    private let prefix: LengthPrefix
    private let writesToSocket: Bool
    private let logger: Logger
    private var closed = false
    /// Framed bytes the kernel has not taken yet, from `backlogStart`.
    private var backlog: [UInt8] = []
    private var backlogStart = 0
    public var backlogLimit = defaultBacklogLimit
    public private(set) var drops = DropCounters()
    /// Which end of a serial line this is; nil on a socket.
    public let serial: SerialRole?
    /// The session named by the host's last reply (guest end of a serial line).
    public private(set) var peerSession: UInt64?
    private var markersHandled = 0
    private var discardsReported = 0
    private var nextHead: MonotonicInstant?
    private var offloadAnswered = false
    /// Frames begin with a virtio-net header: the peer asked for it (serving
    /// side) or agreed to it (dialling side).
    public var virtioHeaders: Bool { offloadAgreed || decoder.offloadRequested }
    private var offloadAgreed = false

    /// Frames per system call when sending.
    public static let sendBatch = 512
    private let vectors: UnsafeMutableBufferPointer<iovec>
    private let prefixes: UnsafeMutableRawPointer

    /// Wraps connected descriptors (the same one twice for a socket).
    /// - Parameters:
    ///   - expectedRequestPath: on the serving side of `vm`, the request
    ///     path to read before frames (`/connect`).
    ///   - serial: the end of a serial line this is (the `vm` framing with markers).
    ///   - acceptsOffload: the serving side of `vm` grants offload requests.
    public init(framing: Framing, readDescriptor: Int32, writeDescriptor: Int32, maximumFrameLength: Int,
                expectedRequestPath: String? = nil, serial: SerialRole? = nil, acceptsOffload: Bool = false,
                logger: Logger = Logger(label: "sovnet.link")) {
        let prefix = framing.lengthPrefix ?? .littleEndian16
        self.framing = framing
        self.prefix = prefix
        self.readDescriptor = readDescriptor
        self.writeDescriptor = writeDescriptor
        self.logger = logger
        self.serial = serial
        decoder = FrameStreamDecoder(prefix: prefix,
                                     maximumFrameLength: acceptsOffload ? OffloadLink.maximumFrameLength : maximumFrameLength,
                                     expectedRequestPath: expectedRequestPath,
                                     offloadRequestPath: acceptsOffload ? OffloadLink.requestPath : nil,
                                     marker: serial?.incomingMarker)
        writesToSocket = Descriptor.isSocket(writeDescriptor)
        vectors = .allocate(capacity: 2 * Self.sendBatch)
        prefixes = .allocate(byteCount: 4 * Self.sendBatch, alignment: 4)
    }

    deinit {
        close()
        vectors.deallocate()
        prefixes.deallocate()
    }

    public func receive(_ body: (UnsafeRawBufferPointer) throws(LinkError) -> Void) throws(LinkError) -> ReceiveStatus {
        if !decoder.hasCompleteFrame {
            let space = decoder.writableSpace
            var count: Int
            repeat {
                count = read(readDescriptor, space.baseAddress, space.count)
            } while count < 0 && errno == EINTR
            if count < 0 {
                if errno == EAGAIN { return .wouldBlock }
                throw LinkError.lastError("read")
            }
            if count == 0 {
                do throws(FramingError) {
                    try decoder.finish()
                } catch {
                    logger.warning("closing \(framing) connection: \(error)")
                    throw LinkError.framing(error)
                }
                return .closed
            }
            decoder.commit(count)
        }
        do throws(LinkError) {
            let frames: Int
            if decoder.offloadRequestPath != nil, !offloadAnswered {
                // The answer goes out before anything the frames make the peer be sent.
                frames = try decoder.forEachFrame { (frame) throws(LinkError) in
                    try answerOffload()
                    try body(frame)
                }
                try answerOffload()
            } else {
                frames = try decoder.forEachFrame(body)
            }
            if serial != nil, decoder.markersRead != markersHandled { try markersArrived() }
            return .frames(frames)
        } catch {
            if case .framing(let framingError) = error, framingError != .otherRequest {
                logger.warning("closing \(framing) connection: \(framingError)")
            }
            throw error
        }
    }

    public func send(_ frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        var index = 0
        while index < frames.count {
            let batch = min(frames.count - index, Self.sendBatch)
            _ = try prepareVectors(frames[index..<(index + batch)])
            try Descriptor.writeAll(writeDescriptor, UnsafeMutableBufferPointer(rebasing: vectors[..<(2 * batch)]),
                                    isSocket: writesToSocket)
            index += batch
        }
    }

    /// Fills one iovec pair (prefix, frame) per frame; returns the bytes they describe.
    private func prepareVectors(_ frames: ArraySlice<UnsafeRawBufferPointer>) throws(LinkError) -> Int {
        var total = 0
        for (slot, frame) in frames.enumerated() {
            guard frame.count <= decoder.maximumFrameLength, frame.count > 0 else {
                throw LinkError.framing(.oversizedFrame(length: frame.count, maximum: decoder.maximumFrameLength))
            }
            let header = prefixes + 4 * slot
            prefix.store(frame.count, at: header)
            vectors[2 * slot] = iovec(iov_base: header, iov_len: prefix.size)
            vectors[2 * slot + 1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
            total += prefix.size + frame.count
        }
        return total
    }

    public var hasBacklog: Bool { backlogStart < backlog.count }
    public var sendDescriptor: Int32 { writeDescriptor }

    public func enqueue(_ frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        if hasBacklog {
            for frame in frames { try keep(frame) }
            try flushBacklog()
            return
        }
        var index = 0
        while index < frames.count {
            let batch = min(frames.count - index, Self.sendBatch)
            let total = try prepareVectors(frames[index..<(index + batch)])
            let written = try Descriptor.writeSome(writeDescriptor, UnsafeMutableBufferPointer(rebasing: vectors[..<(2 * batch)]),
                                                   isSocket: writesToSocket)
            if written < total {
                // Keep the rest of this batch, starting inside a frame if need be, then every later frame.
                var skip = written
                for slot in 0..<batch {
                    let frame = frames[index + slot]
                    let length = prefix.size + frame.count
                    if skip >= length {
                        skip -= length
                        continue
                    }
                    try keep(frame, skipping: skip, force: skip > 0)
                    skip = 0
                }
                for frame in frames[(index + batch)...] { try keep(frame) }
                return
            }
            index += batch
        }
    }

    /// Adds a frame to the backlog, less its first `skipping` framed bytes;
    /// a frame already partly written is kept whatever the limit (`force`).
    private func keep(_ frame: UnsafeRawBufferPointer, skipping: Int = 0, force: Bool = false) throws(LinkError) {
        guard frame.count <= decoder.maximumFrameLength, frame.count > 0 else {
            throw LinkError.framing(.oversizedFrame(length: frame.count, maximum: decoder.maximumFrameLength))
        }
        guard force || backlog.count - backlogStart + prefix.size + frame.count <= backlogLimit else {
            drops.backlogFull += 1
            return
        }
        if backlogStart > 0, backlogStart * 2 >= backlog.count {
            backlog.removeSubrange(0..<backlogStart)
            backlogStart = 0
        }
        var header = (UInt32(0))
        withUnsafeMutableBytes(of: &header) { raw in
            prefix.store(frame.count, at: raw.baseAddress!)
            let framed = Array(UnsafeRawBufferPointer(rebasing: raw[..<prefix.size])) + Array(frame)
            backlog.append(contentsOf: framed[skipping...])
        }
    }

    public func flushBacklog() throws(LinkError) {
        while hasBacklog {
            let written = try backlog.withMutableRawBytes { (raw) throws(LinkError) in
                var vector = iovec(iov_base: raw.baseAddress! + backlogStart, iov_len: raw.count - backlogStart)
                return try withUnsafeMutablePointer(to: &vector) { (vector) throws(LinkError) in
                    try Descriptor.writeSome(writeDescriptor, UnsafeMutableBufferPointer(start: vector, count: 1), isSocket: writesToSocket)
                }
            }
            guard written > 0 else { return }
            backlogStart += written
        }
        backlog.removeAll(keepingCapacity: backlog.capacity <= backlogLimit)
        backlogStart = 0
    }

    // MARK: Offloads

    /// Sends the 200 once the peer's head asked for offloads.
    private func answerOffload() throws(LinkError) {
        guard decoder.offloadRequested, !offloadAnswered else { return }
        offloadAnswered = true
        try enqueueRaw(OffloadLink.reply)
    }

    /// The dialling side's wait for the answer to its offload request:
    /// true once the 200 came (frames carry headers from then on), false
    /// for any other answer, a closed connection or no answer in time.
    func awaitOffloadAnswer(timeout: Duration) throws(LinkError) -> Bool {
        let deadline = MonotonicInstant.now + timeout
        while true {
            do {
                if let head = try decoder.takeResponseHead() {
                    offloadAgreed = OffloadLink.accepts(head)
                    return offloadAgreed
                }
            } catch {
                return false
            }
            let left = deadline - .now
            guard left > .zero else { return false }
            var poller = pollfd(fd: readDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, PollTimeout.milliseconds(left)) > 0
            else { continue }
            let space = decoder.writableSpace
            let count = read(readDescriptor, space.baseAddress, space.count)
            if count < 0, errno == EINTR || errno == EAGAIN { continue }
            guard count > 0 else { return false }
            decoder.commit(count)
        }
    }

    // MARK: Serial line

    /// When `linkTimer` must run next: the guest end's next head.
    public var linkDeadline: MonotonicInstant? { nextHead }

    /// Writes the guest end's head when it is due: every 2 s, or every
    /// 250 ms while the host's replies are not being read.
    public func linkTimer(now: MonotonicInstant) throws(LinkError) {
        guard case .guest(let path) = serial, let due = nextHead, now >= due else { return }
        try sendRaw(Framing.vmRequestHead(path: path))
        nextHead = now + (decoder.isSynchronized ? SerialRole.headInterval : SerialRole.unsynchronisedHeadInterval)
    }

    /// Opens the guest end of a serial line: the first head goes out now.
    func beginSerialLink() throws(LinkError) {
        guard case .guest(let path) = serial else { return }
        try sendRaw(Framing.vmRequestHead(path: path))
        nextHead = .now + SerialRole.unsynchronisedHeadInterval
    }

    /// The host end answers heads; the guest end learns the host's session.
    private func markersArrived() throws(LinkError) {
        markersHandled = decoder.markersRead
        if decoder.discardedBytes > discardsReported, decoder.isSynchronized {
            let lost = decoder.lostSynchronization > 0 ? " (step lost \(decoder.lostSynchronization) times so far)" : ""
            logger.info("serial line synchronised: \(decoder.discardedBytes - discardsReported) bytes before the marker discarded\(lost)")
            discardsReported = decoder.discardedBytes
        }
        switch serial {
        case .host(let session):
            try enqueueRaw(SerialMarker.hostReply(session: session))
        case .guest:
            peerSession = decoder.lastMarker.withUnsafeBytes { SerialMarker.session(inHostReply: $0) }
        case nil:
            break
        }
    }

    /// Queues raw bytes between two frames, whatever the backlog's limit.
    private func enqueueRaw(_ bytes: [UInt8]) throws(LinkError) {
        if !hasBacklog {
            let written = try bytes.withRawBytes { (raw) throws(LinkError) in
                var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress!), iov_len: raw.count)
                return try withUnsafeMutablePointer(to: &vector) { (vector) throws(LinkError) in
                    try Descriptor.writeSome(writeDescriptor, UnsafeMutableBufferPointer(start: vector, count: 1), isSocket: writesToSocket)
                }
            }
            if written == bytes.count { return }
            backlog.append(contentsOf: bytes[written...])
            return
        }
        backlog.append(contentsOf: bytes)
    }

    /// Writes raw bytes between frames (the `vm` request head).
    func sendRaw(_ bytes: [UInt8]) throws(LinkError) {
        var copy = bytes
        try copy.withMutableRawBytes { (raw) throws(LinkError) in
            vectors[0] = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            try Descriptor.writeAll(writeDescriptor, UnsafeMutableBufferPointer(rebasing: vectors[..<1]),
                                    isSocket: writesToSocket)
        }
    }

    /// Gives up the descriptor without closing it, for a socket handed over
    /// to another server; the connection is closed as far as it knows.
    public func releaseDescriptor() -> Int32 {
        closed = true
        return readDescriptor
    }

    public func close() {
        guard !closed else { return }
        closed = true
        systemClose(readDescriptor)
        if writeDescriptor != readDescriptor { systemClose(writeDescriptor) }
    }
}
