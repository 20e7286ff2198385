// Writes Ethernet frames to a pcap file through libpcap: a "dead" handle of
// link type EN10MB, pcap_dump for each frame, and a flush after each batch so
// a killed process leaves a readable file. An optional BPF filter chooses the
// frames that are written.
import CPcap
import Glibc

/// A pcap file being written, for `--pcap FILE`.
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

    private let handle: OpaquePointer
    private let dumper: OpaquePointer

    public init(path: String, filter: PacketFilter? = nil, snapshotLength: Int = 262_144) throws(CaptureError) {
        guard let handle = pcap_open_dead(DLT_EN10MB, Int32(snapshotLength)) else {
            throw CaptureError.libpcap("pcap_open_dead failed")
        }
        guard let dumper = pcap_dump_open(handle, path) else {
            let reason = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw CaptureError.cannotOpen(path: path, reason: reason)
        }
        self.path = path
        self.filter = filter
        self.snapshotLength = snapshotLength
        self.handle = handle
        self.dumper = dumper
    }

    deinit {
        pcap_dump_close(dumper)
        pcap_close(handle)
    }

    /// Appends one frame stamped with `time` (now by default). Call `flush()`
    /// after a batch.
    public func write(_ frame: UnsafeRawBufferPointer, time: timeval? = nil) {
        guard failure == nil, let base = frame.baseAddress else { return }
        if let filter, !filter.matches(frame) {
            filteredOut += 1
            return
        }
        var header = pcap_pkthdr()
        header.ts = time ?? Self.now()
        header.len = bpf_u_int32(frame.count)
        header.caplen = bpf_u_int32(min(frame.count, snapshotLength))
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  base.assumingMemoryBound(to: UInt8.self))
        // stdio writes out a full buffer here: its errno is only good now.
        if ferror(pcap_dump_file(dumper)) != 0 { return fail() }
        written += 1
    }

    /// Appends one frame held in an array.
    public func write(_ frame: [UInt8], time: timeval? = nil) {
        frame.withUnsafeBytes { write($0, time: time) }
    }

    /// Pushes buffered frames to the file; records the first failure.
    @discardableResult
    public func flush() -> CaptureError? {
        guard failure == nil else { return failure }
        if pcap_dump_flush(dumper) != 0 || ferror(pcap_dump_file(dumper)) != 0 { fail() }
        return failure
    }

    /// Records the write error in errno and stops writing.
    private func fail() {
        let error = CaptureError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        failure = error
        onFailure?(error)
    }

    private static func now() -> timeval {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return timeval(tv_sec: time.tv_sec, tv_usec: time.tv_nsec / 1000)
    }
}
