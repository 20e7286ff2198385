// Every NATed flow holds a host socket, so the proxy raises its soft limit
// on open descriptors to the hard limit at start, as Go programs (gvproxy)
// do: a soft limit of 1,024, the common default, would refuse the 1,000th
// concurrent flow long before --max-flows. Flows of all protocols together
// are kept below the limit (`flowBudget`), so that a guest opening flows
// cannot take the descriptors that listeners, guests and the API need.
import Glibc

/// The process's limit on open file descriptors.
public enum DescriptorLimit {
    /// Raises the soft limit to the hard one; returns the limits before and
    /// after, or nil when the limit cannot be read.
    @discardableResult
    public static func raise() -> (before: UInt64, after: UInt64)? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let before = UInt64(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else { return (before, before) }
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (before, before) }
        return (before, UInt64(limit.rlim_cur))
    }

    /// Descriptors kept for everything but flows: listeners, guest and API
    /// connections, upstream resolvers, capture files.
    public static let reserve = 512

    /// How many NAT flows (one descriptor each) fit under the soft limit
    /// beside the reserve; at least 64.
    public static func flowBudget() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 64 }
        return max(64, Int(clamping: UInt64(limit.rlim_cur)) - reserve)
    }
}
