// Points in time for the code the guest program is built from. In the
// toolchain's usual builds they are ContinuousClock's instants. Embedded
// Swift, the way to a guest program under the static runtime's 6 MB (issue
// #19, docs/guest.md), has no ContinuousClock: there they are nanoseconds of
// CLOCK_MONOTONIC, with the same arithmetic and the same `now`.
#if hasFeature(Embedded)
import CSovnetShim

/// A point on a monotonic clock, in nanoseconds.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// The clock's reading now.
    public static var now: MonotonicInstant {
        MonotonicInstant(nanoseconds: sovnet_monotonic_nanoseconds())
    }

    public static func < (earlier: MonotonicInstant, later: MonotonicInstant) -> Bool {
        earlier.nanoseconds < later.nanoseconds
    }

    public static func + (instant: MonotonicInstant, duration: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: instant.nanoseconds &+ duration.nanoseconds)
    }

    public static func - (instant: MonotonicInstant, duration: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: instant.nanoseconds &- duration.nanoseconds)
    }

    public static func - (later: MonotonicInstant, earlier: MonotonicInstant) -> Duration {
        .nanoseconds(later.nanoseconds &- earlier.nanoseconds)
    }
}

extension Duration {
    /// Whole nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return whole &+ attoseconds / 1_000_000_000
    }
}
#else
/// A point on the continuous clock.
public typealias MonotonicInstant = ContinuousClock.Instant
#endif
