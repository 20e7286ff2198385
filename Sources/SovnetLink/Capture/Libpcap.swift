// libpcap's functions, loaded once on first use (CSovnetShim's
// sovnet_libpcap_load): only compiling a capture filter and reading a
// capture file need it; writing a capture does not (PcapWriter).
import CSovnetShim

/// libpcap, loaded at run time.
enum Libpcap {
    /// The functions, or why libpcap could not be loaded.
    static let loaded: Result<sovnet_libpcap, CaptureError> = {
        #if hasFeature(Embedded)
        // The Embedded build is linked statically (scripts/build-guest-embedded): it loads no libraries.
        return .failure(.libpcap("cannot load libpcap: this static build of the guest program loads no libraries; "
                                 + "sovnet-guest (the SwiftPM build) does"))
        #else
        var reason = [CChar](repeating: 0, count: 256)
        guard let functions = sovnet_libpcap_load(&reason, reason.count) else {
            let text = String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return .failure(.libpcap("cannot load libpcap (install libpcap, e.g. apk add libpcap or apt install libpcap0.8): \(text)"))
        }
        return .success(functions.pointee)
        #endif
    }()

    /// The functions; throws if libpcap is not installed.
    static func functions() throws(CaptureError) -> sovnet_libpcap {
        try loaded.get()
    }

    /// Ethernet, libpcap's DLT_EN10MB.
    static let ethernet: Int32 = 1
    /// pcap_compile's netmask when it is not known.
    static let netmaskUnknown: UInt32 = 0xffff_ffff
    /// pcap_next_ex's result for an error (PCAP_ERROR).
    static let error: Int32 = -1
    /// The size of libpcap's error buffer (PCAP_ERRBUF_SIZE).
    static let errorBufferSize = 256

    /// The last error of `handle`, as text.
    static func lastError(_ functions: sovnet_libpcap, _ handle: UnsafeMutableRawPointer) -> String {
        functions.geterr(handle).map { String(cString: $0) } ?? "unknown libpcap error"
    }
}
