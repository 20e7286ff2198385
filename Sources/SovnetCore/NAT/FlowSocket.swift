// The host side of a TCP flow, as the TCP core sees it. The driver's socket
// implements it with non-blocking calls; tests implement it in memory. The
// core never buffers the stream: bytes from the guest go straight into the
// socket (and are acknowledged only once it took them), and bytes for the
// guest stay in the socket's receive queue, read with a peek, until the guest
// acknowledges them; a retransmission peeks them again (passt's design).

/// What a peek at the host socket found.
public enum PeekResult: Equatable, Sendable {
    /// This many new bytes were copied (more than 0).
    case data(Int)
    /// Nothing new now; the socket will report readability when there is.
    case wouldBlock
    /// New bytes may wait beyond what a peek can reach now: the next peek
    /// after the guest acknowledges some may find them (no readiness comes
    /// for bytes already queued).
    case outOfReach
    /// The host closed its sending side, after every byte already peeked.
    case endOfStream
    /// The connection failed (reset or timed out), with its errno.
    case failed(Int32)
}

/// The host end of a TCP flow.
public protocol FlowSocket: AnyObject {
    /// Writes bytes from the guest; returns how many the socket took (0 when
    /// it is full), or nil when the connection failed.
    func write(_ bytes: UnsafeRawBufferPointer) -> Int?
    /// Copies bytes the guest has not been sent yet, without consuming them.
    func peek(into buffer: UnsafeMutableRawBufferPointer) -> PeekResult
    /// Discards `count` bytes the guest acknowledged from the receive queue.
    func consume(_ count: Int)
    /// Makes the next peek start again at the oldest unacknowledged byte.
    func rewind()
    /// How many more bytes `write` would take now: the window the guest gets.
    var writeSpace: Int { get }
    /// Sends FIN to the host.
    func shutdownWrite()
    /// Asks to be told when the socket can take more bytes (a `hostWritable` call).
    func wantWritable(_ wanted: Bool)
    /// Ends a non-blocking connect whose socket became ready: 0 when it is
    /// connected (and now watched for data), or the errno value it failed with.
    func finishConnect() -> Int32
    /// Closes the socket; with `reset`, the host sees an RST. Closing a
    /// closed socket does nothing.
    func close(reset: Bool)
}
