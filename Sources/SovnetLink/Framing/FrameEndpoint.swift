/// Something Ethernet frames go in and out of: a framed socket or a tap device.
///
/// `receive` reads what is ready in as few system calls as it can and hands
/// over each frame, borrowed: the bytes stay valid until the next `receive`,
/// so a caller may collect a batch and send it on. `send` writes a
/// batch of frames and returns once the kernel has taken all of them, waiting
/// for room if it must; that wait is the back-pressure a slow peer exerts.
public protocol FrameEndpoint: AnyObject {
    /// The descriptor to poll for readability.
    var readDescriptor: Int32 { get }
    /// Reads one batch; blocks only if the descriptor blocks and nothing is ready.
    func receive(_ body: (UnsafeRawBufferPointer) throws(LinkError) -> Void) throws(LinkError) -> ReceiveStatus
    /// Sends `frames` in order.
    func send(_ frames: [UnsafeRawBufferPointer]) throws(LinkError)
    /// Closes the descriptors; further calls fail.
    func close()

    /// Sends `frames` without waiting: what the kernel does not take now is
    /// kept, in order, and written by `flushBacklog` once the descriptor is
    /// writable. Frames that would grow the backlog past its limit are
    /// dropped and counted (`DropCounters.backlogFull`).
    func enqueue(_ frames: [UnsafeRawBufferPointer]) throws(LinkError)
    /// Writes as much of the backlog as the kernel takes now.
    func flushBacklog() throws(LinkError)
    /// Whether frames are waiting for the descriptor to become writable.
    var hasBacklog: Bool { get }
    /// The descriptor to watch for writability while there is a backlog.
    var sendDescriptor: Int32 { get }

    // The one-frame forms, given by the extension below. They are
    // requirements so that calls on an existential from another module go
    // through the conformance: Embedded Swift (scripts/build-guest-embedded)
    // miscompiles such calls of a protocol extension's own methods.
    /// Sends one frame.
    func send(_ frame: UnsafeRawBufferPointer) throws(LinkError)
    /// Sends one frame held in an array.
    func send(_ frame: [UInt8]) throws(LinkError)
    /// Queues one frame held in an array.
    func enqueue(_ frame: [UInt8]) throws(LinkError)

    /// When the link needs `linkTimer` called (a serial line's next head); nil for never.
    var linkDeadline: MonotonicInstant? { get }
    /// Does the link's timed work that is due at `now`.
    func linkTimer(now: MonotonicInstant) throws(LinkError)
}

extension FrameEndpoint {
    public var linkDeadline: MonotonicInstant? { nil }
    public func linkTimer(now: MonotonicInstant) throws(LinkError) {}

    /// Sends one frame.
    public func send(_ frame: UnsafeRawBufferPointer) throws(LinkError) {
        try send([frame])
    }

    /// Sends one frame held in an array.
    public func send(_ frame: [UInt8]) throws(LinkError) {
        try frame.withRawBytes { (bytes) throws(LinkError) in try send([bytes]) }
    }

    /// Queues one frame held in an array.
    public func enqueue(_ frame: [UInt8]) throws(LinkError) {
        try frame.withRawBytes { (bytes) throws(LinkError) in try enqueue([bytes]) }
    }
}

extension Array where Element == [UInt8] {
    /// Calls `body` with a buffer pointer for each element (a few dozen at most: it nests).
    func withUnsafeBufferPointers<R>(_ body: ([UnsafeRawBufferPointer]) throws(LinkError) -> R) throws(LinkError) -> R {
        var pointers: [UnsafeRawBufferPointer] = []
        pointers.reserveCapacity(count)
        func nest(_ index: Int) throws(LinkError) -> R {
            guard index < count else { return try body(pointers) }
            return try self[index].withRawBytes { (bytes) throws(LinkError) in
                pointers.append(bytes)
                return try nest(index + 1)
            }
        }
        return try nest(0)
    }
}

/// What one `receive` call found.
public enum ReceiveStatus: Equatable, Sendable {
    /// This many frames were handed to the body (possibly 0, mid-frame).
    case frames(Int)
    /// Nothing was ready on a non-blocking descriptor.
    case wouldBlock
    /// The peer closed the connection cleanly.
    case closed
}

/// Counters of frames a connection dropped instead of closing.
public struct DropCounters: Sendable, Equatable {
    /// Datagrams shorter than an Ethernet header (vfkit's magic excepted).
    public var runt = 0
    /// Datagrams longer than the maximum frame length.
    public var oversized = 0
    /// Frames sent before a vfkit peer was known.
    public var noPeer = 0
    /// Frames not sent because the peer was not reading and the backlog was full.
    public var backlogFull = 0
    /// Frames a tap refused (EINVAL: a virtio-net header the kernel does not
    /// take, a length it cannot carry); the rest of the batch still goes.
    public var refused = 0
}

/// How many bytes of frames a connection keeps for a peer that is not reading.
public let defaultBacklogLimit = 4 << 20
