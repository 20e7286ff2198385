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
// slice. Work found within the window starts the window again; a window
// with none lets the loop block as before. An idle loop never polls, so a
// quiet guest costs nothing; a busy one spends at most the window's CPU time
// after each burst. A window of zero turns polling off.
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
    /// many descriptors are ready, or a negative number for none): with
    /// timeout 0 within the window after the last work, else `idle`, which
    /// is only worked out then (not on every poll).
    public mutating func wait<Failure: Error>(idle: @autoclosure () -> Int32,
                                             _ wait: (Int32) throws(Failure) -> Int) throws(Failure) -> Int {
        let polling = isPolling(now: .now)
        let ready = try wait(polling ? 0 : idle())
        if ready > 0 {
            lastWork = .now
        } else if ready == 0, polling {
            yields += 1
            sched_yield()
        }
        return ready
    }

    /// Whether a wait at `now` polls instead of blocking.
    public func isPolling(now: MonotonicInstant) -> Bool {
        guard let lastWork, window > .zero else { return false }
        return now - lastWork < window
    }
}
