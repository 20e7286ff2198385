// `sovnet proxy --drop-capabilities`: a proxy started as root keeps only
// CAP_NET_BIND_SERVICE (port forwards below 1024, also those the API opens
// later) and sets no_new_privs, so nothing it runs or is tricked into doing
// has root's other powers. Linux keeps capabilities per thread, so this runs
// first, before the API's event loops start their threads.
import CSovnetShim
import Glibc

/// The proxy's Linux capabilities.
public enum Capabilities {
    /// CAP_NET_BIND_SERVICE's number.
    public static let netBindService = 10

    /// Why the capabilities could not be dropped.
    public struct Problem: Error, CustomStringConvertible {
        public let description: String
    }

    /// Keeps only `kept` (capability numbers) in every set of this thread,
    /// and in the threads it starts from now on.
    public static func keepOnly(_ kept: [Int]) throws(Problem) {
        let mask = kept.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
        guard sovnet_keep_capabilities(mask) == 0 else {
            throw Problem(description: "cannot drop capabilities: \(String(cString: strerror(errno)))")
        }
    }
}
