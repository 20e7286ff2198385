// Writes Ethernet frames to a pcap file in libpcap's classic savefile format,
// which tcpdump, tshark and Wireshark read: a 24-byte file header (magic
// a1b2c3d4 in this machine's byte order, version 2.4, snapshot length, link
// type 1 for Ethernet), then per frame a 16-byte record header (seconds,
// microseconds, captured and original lengths) and the captured bytes. No
// library is needed to write it. Records gather in a buffer that flush()
// writes out after each batch (or when it fills), so a killed process leaves
// a readable file. An optional BPF filter chooses the frames that are written.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif

/// A pcap file being written, for `--pcap FILE` (`-` for standard output).
///
/// Not thread-safe: one writer per packet loop. After a write error the
/// writer stops writing and remembers the error (`failure`); callers log it
/// once and carry on moving traffic.
public final class PcapWriter {
    public let path: String
    public let filter: PacketFilter?
    /// Frames longer than this are cut in the file (the original length is kept).
    public let snapshotLength: Int
    /// Frames written and frames the filter rejected.
    public private(set) var written = 0
    public private(set) var filteredOut = 0
    /// The first write error, after which nothing more is written.
    public private(set) var failure: CaptureError?
    /// Called once, with the first write error (a full disk, say), so the
    /// owner can say the capture stopped; the traffic is not the capture's.
    public var onFailure: ((CaptureError) -> Void)?

    private let descriptor: Int32
    private var buffer: [UInt8] = []
    /// Records are written out when the buffer holds this much, flush or not.
    private static let bufferLimit = 256 << 10

    public init(path: String, filter: PacketFilter? = nil, snapshotLength: Int = 262_144) throws(CaptureError) {
        // "-" is standard output, as for tcpdump -w - (to pipe into tcpdump -r - or Wireshark).
        let descriptor = path == "-" ? fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0) : systemOpen(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else { throw CaptureError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        self.path = path
        self.filter = filter
        self.snapshotLength = snapshotLength
        self.descriptor = descriptor
        buffer.reserveCapacity(Self.bufferLimit + 65_536)
        append(UInt32(0xa1b2_c3d4))
        append(UInt16(2))
        append(UInt16(4))
        append(Int32(0))
        append(UInt32(0))
        append(UInt32(truncatingIfNeeded: snapshotLength))
        append(UInt32(1))
        if let error = flush() { throw error }
    }

    deinit {
        flush()
        close(descriptor)
    }

    /// Appends one frame stamped with `time` (now by default). Call `flush()`
    /// after a batch.
    public func write(_ frame: UnsafeRawBufferPointer, time: timeval? = nil) {
        guard failure == nil else { return }
        if let filter, !filter.matches(frame) {
            filteredOut += 1
            return
        }
        let stamp = time ?? Self.now()
        let captured = min(frame.count, snapshotLength)
        append(UInt32(truncatingIfNeeded: stamp.tv_sec))
        append(UInt32(truncatingIfNeeded: stamp.tv_usec))
        append(UInt32(captured))
        append(UInt32(frame.count))
        buffer.append(contentsOf: frame.prefix(captured))
        written += 1
        if buffer.count >= Self.bufferLimit { flush() }
    }

    /// Appends one frame held in an array.
    public func write(_ frame: [UInt8], time: timeval? = nil) {
        frame.withUnsafeBytes { write($0, time: time) }
    }

    /// Writes the buffered records to the file; records the first failure.
    @discardableResult
    public func flush() -> CaptureError? {
        guard failure == nil else { return failure }
        var offset = 0
        while offset < buffer.count {
            let count = buffer.withUnsafeBytes { systemWrite(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                let error = CaptureError.cannotWrite(path: path, reason: String(cString: strerror(count < 0 ? errno : ENOSPC)))
                failure = error
                buffer = []
                onFailure?(error)
                return error
            }
            offset += count
        }
        buffer.removeAll(keepingCapacity: true)
        return nil
    }

    private func append<Field: FixedWidthInteger>(_ field: Field) {
        withUnsafeBytes(of: field) { buffer.append(contentsOf: $0) }
    }

    private static func now() -> timeval {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return timeval(tv_sec: time.tv_sec, tv_usec: time.tv_nsec / 1000)
    }
}
