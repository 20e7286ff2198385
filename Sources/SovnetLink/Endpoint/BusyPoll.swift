// Bounded busy polling for the packet loops (issue #20). A loop that sleeps
// in poll(2) or epoll_wait(2) and is woken by a packet pays for the wake-up:
// on a VM an idle vCPU halts, and waking it costs 20–40 µs. A TCP round trip
// through forwarder and proxy wakes six threads in turn, and the wake-ups
// were most of its time.
//
// So after a wait that found work, the loop keeps waiting without blocking
// (timeout 0) for a short window, and yields the CPU between empty polls:
// a thread made runnable on this CPU (often the very peer this loop just
// woke) runs at the next yield instead of waiting for the poller's time
// slice. The empty polls repeat inside `wait`, not through the caller's
// loop, so a packet is picked up within one poll and one yield (about a
// microsecond), not a whole loop turn; a caller with work pending (an idle
// timeout of 0) gets it back after one empty poll, and its timers wait at
// most the window. Work found within the window starts the window again; a
// window with none lets the loop block as before. An idle loop never polls,
// so a quiet guest costs nothing; a busy one spends at most the window's CPU
// time after each burst. A window of zero turns polling off.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif

/// When a packet loop waits without blocking, and the yield between polls.
public struct BusyPoll: Sendable {
    /// How long the loop keeps polling after its last work; zero: never.
    public let window: Duration
    /// Polls that found nothing, after which the CPU was given away.
    public private(set) var yields = 0
    private var lastWork: MonotonicInstant?

    /// The window Linux suggests for its own socket busy polling
    /// (`net.core.busy_poll`): 50 µs.
    public static let defaultMicroseconds = 50
    /// The same window as a duration.
    public static let defaultWindow = Duration.microseconds(defaultMicroseconds)
    /// The windows the commands accept, in microseconds: up to 10 ms.
    public static let allowedMicroseconds = 0...10_000

    public init(window: Duration) {
        self.window = max(.zero, window)
    }

    /// Waits through `wait` (given a timeout in milliseconds, returning how
    /// many descriptors are ready, or a negative number for none). Within the
    /// window after the last work it polls with timeout 0, yielding after
    /// each empty poll, until something is ready or the window ends (then
    /// 0), or at once when `idle` is 0; otherwise it blocks for `idle`, which
    /// is worked out only then and after the first empty poll.
    public mutating func wait<Failure: Error>(idle: @autoclosure () -> Int32,
                                             _ wait: (Int32) throws(Failure) -> Int) throws(Failure) -> Int {
        guard isPolling(now: .now) else {
            let ready = try wait(idle())
            if ready > 0 { lastWork = .now }
            return ready
        }
        var first = true
        while true {
            let ready = try wait(0)
            if ready > 0 { lastWork = .now }
            guard ready == 0 else { return ready }
            if first {
                first = false
                if idle() == 0 { return 0 }
            }
            yields += 1
            sched_yield()
            guard isPolling(now: .now) else { return 0 }
        }
    }

    /// Whether a wait at `now` polls instead of blocking.
    public func isPolling(now: MonotonicInstant) -> Bool {
        guard let lastWork, window > .zero else { return false }
        return now - lastWork < window
    }
}
