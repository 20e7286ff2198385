// Reads frames back from a pcap (or pcapng) file through libpcap, loaded at
// run time (Libpcap), with an optional BPF filter, for `sovnet pcap` and for
// tests.
import CSovnetShim

/// One frame read from a capture file.
public struct CapturedFrame: Sendable {
    /// Seconds and microseconds since the epoch.
    public var seconds: Int
    public var microseconds: Int
    /// The frame's length on the wire; `bytes` may be shorter if it was cut.
    public var originalLength: Int
    public var bytes: [UInt8]
}

/// A capture file opened for reading.
public final class PcapReader: Sequence, IteratorProtocol {
    public let path: String
    /// The file's link-layer type (`DLT_EN10MB` = 1 for Ethernet).
    public let linkType: Int32
    private let functions: sovnet_libpcap
    private let handle: UnsafeMutableRawPointer
    /// The last read error, if reading stopped early.
    public private(set) var failure: CaptureError?

    public init(path: String, filter: String? = nil) throws(CaptureError) {
        let functions = try Libpcap.functions()
        var errorBuffer = [CChar](repeating: 0, count: Libpcap.errorBufferSize)
        guard let handle = functions.open_offline(path, &errorBuffer) else {
            throw CaptureError.cannotOpen(path: path, reason: String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.path = path
        self.functions = functions
        self.handle = handle
        linkType = functions.datalink(handle)
        // Every stored property is set, so from here a throw runs deinit,
        // which closes the handle.
        if let filter {
            var program = sovnet_bpf_program()
            guard functions.compile(handle, &program, filter, 1, Libpcap.netmaskUnknown) == 0 else {
                throw CaptureError.badFilter(expression: filter, reason: Libpcap.lastError(functions, handle))
            }
            defer { functions.freecode(&program) }
            guard functions.setfilter(handle, &program) == 0 else {
                throw CaptureError.badFilter(expression: filter, reason: Libpcap.lastError(functions, handle))
            }
        }
    }

    deinit {
        functions.close(handle)
    }

    /// The next frame, or nil at the end of the file or on an error (see `failure`).
    public func next() -> CapturedFrame? {
        var header: UnsafeMutablePointer<sovnet_pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let result = functions.next_ex(handle, &header, &data)
        guard result == 1, let header, let data else {
            if result == Libpcap.error {
                failure = .cannotOpen(path: path, reason: Libpcap.lastError(functions, handle))
            }
            return nil
        }
        let length = Int(header.pointee.caplen)
        return CapturedFrame(
            seconds: Int(header.pointee.ts.tv_sec), microseconds: Int(header.pointee.ts.tv_usec),
            originalLength: Int(header.pointee.len),
            bytes: Array(UnsafeBufferPointer(start: data, count: length)))
    }

    /// Every frame of the file at `path`.
    public static func frames(at path: String, filter: String? = nil) throws(CaptureError) -> [CapturedFrame] {
        let reader = try PcapReader(path: path, filter: filter)
        let frames = Array(reader)
        if let failure = reader.failure { throw failure }
        return frames
    }
}
