// BPF filters compiled by libpcap from tcpdump's filter language, applied to
// frames in memory (pcap_offline_filter) rather than to a live device.
// libpcap is loaded when the first filter is compiled (Libpcap).
import CSovnetShim

/// A compiled BPF program for Ethernet frames, such as `udp port 67 or arp`.
public final class PacketFilter {
    /// The expression it was compiled from.
    public let expression: String
    private var program = sovnet_bpf_program()
    private let functions: sovnet_libpcap

    /// Compiles `expression`; throws `CaptureError.badFilter` with libpcap's
    /// message, or `.libpcap` if libpcap is not installed.
    public init(_ expression: String, snapshotLength: Int32 = 262_144) throws(CaptureError) {
        self.expression = expression
        functions = try Libpcap.functions()
        guard let handle = functions.open_dead(Libpcap.ethernet, snapshotLength) else {
            throw CaptureError.libpcap("pcap_open_dead failed")
        }
        defer { functions.close(handle) }
        guard functions.compile(handle, &program, expression, 1, Libpcap.netmaskUnknown) == 0 else {
            throw CaptureError.badFilter(expression: expression, reason: Libpcap.lastError(functions, handle))
        }
    }

    deinit {
        functions.freecode(&program)
    }

    /// Whether the frame in `bytes` passes the filter.
    public func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        var header = sovnet_pcap_pkthdr()
        header.caplen = UInt32(bytes.count)
        header.len = UInt32(bytes.count)
        return functions.offline_filter(&program, &header, base.assumingMemoryBound(to: UInt8.self)) != 0
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
