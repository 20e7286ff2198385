// Timeouts for poll(2) and epoll_wait(2), which count whole milliseconds:
// rounded up, so that a wait for a deadline never ends before it.

/// Milliseconds for poll(2) and epoll_wait(2).
public enum PollTimeout {
    /// Until `deadline`: 0 once it has passed, -1 (for ever) without one.
    public static func milliseconds(until deadline: MonotonicInstant?,
                                    now: MonotonicInstant = .now) -> Int32 {
        guard let deadline else { return -1 }
        return milliseconds(deadline - now)
    }

    /// The earlier of two deadlines, either of which may be absent.
    public static func earlier(_ first: MonotonicInstant?, _ second: MonotonicInstant?) -> MonotonicInstant? {
        guard let first else { return second }
        guard let second else { return first }
        return min(first, second)
    }

    /// `duration`, rounded up; 0 for none or less.
    public static func milliseconds(_ duration: Duration) -> Int32 {
        guard duration > .zero else { return 0 }
        let (seconds, attoseconds) = duration.components
        guard seconds < Int64(Int32.max / 1000) else { return Int32.max }
        let perMillisecond: Int64 = 1_000_000_000_000_000
        return Int32(clamping: seconds * 1000 + (attoseconds + perMillisecond - 1) / perMillisecond)
    }
}
