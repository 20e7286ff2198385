// BPF filters compiled by libpcap from tcpdump's filter language, applied to
// frames in memory (pcap_offline_filter) rather than to a live device.
import CPcap

/// A compiled BPF program for Ethernet frames, such as `udp port 67 or arp`.
public final class PacketFilter {
    /// The expression it was compiled from.
    public let expression: String
    private var program = bpf_program()

    /// Compiles `expression`; throws `CaptureError.badFilter` with libpcap's message.
    public init(_ expression: String, snapshotLength: Int32 = 262_144) throws(CaptureError) {
        self.expression = expression
        guard let handle = pcap_open_dead(DLT_EN10MB, snapshotLength) else {
            throw CaptureError.libpcap("pcap_open_dead failed")
        }
        defer { pcap_close(handle) }
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError.badFilter(expression: expression, reason: String(cString: pcap_geterr(handle)))
        }
    }

    deinit {
        pcap_freecode(&program)
    }

    /// Whether the frame in `bytes` passes the filter.
    public func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        var header = pcap_pkthdr()
        header.caplen = bpf_u_int32(bytes.count)
        header.len = bpf_u_int32(bytes.count)
        return pcap_offline_filter(&program, &header, base.assumingMemoryBound(to: UInt8.self)) != 0
    }

    /// The underlying program, for installing on a pcap handle.
    func withProgram<R>(_ body: (UnsafeMutablePointer<bpf_program>) -> R) -> R {
        body(&program)
    }
}

/// What went wrong with a capture file or filter.
public enum CaptureError: Error, Equatable, CustomStringConvertible {
    case badFilter(expression: String, reason: String)
    case cannotOpen(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case libpcap(String)

    public var description: String {
        switch self {
        case .badFilter(let expression, let reason): "bad capture filter '\(expression)': \(reason)"
        case .cannotOpen(let path, let reason): "cannot open capture \(path): \(reason)"
        case .cannotWrite(let path, let reason): "cannot write capture \(path): \(reason)"
        case .libpcap(let reason): "libpcap: \(reason)"
        }
    }
}
