// The guest cores' points in time. In the toolchain's usual builds they are
// ContinuousClock's instants. Embedded Swift, the way to a guest program
// under the static runtime's 6 MB (issue #19, docs/guest.md), has no
// ContinuousClock: there they are nanoseconds of a monotonic clock, with the
// same arithmetic. The cores never read the clock; their callers pass `now`.
#if hasFeature(Embedded)
/// A point on a monotonic clock, in nanoseconds.
public struct GuestInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    public static func < (earlier: GuestInstant, later: GuestInstant) -> Bool {
        earlier.nanoseconds < later.nanoseconds
    }

    public static func + (instant: GuestInstant, duration: Duration) -> GuestInstant {
        GuestInstant(nanoseconds: instant.nanoseconds &+ duration.nanoseconds)
    }

    public static func - (later: GuestInstant, earlier: GuestInstant) -> Duration {
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
public typealias GuestInstant = ContinuousClock.Instant
#endif
