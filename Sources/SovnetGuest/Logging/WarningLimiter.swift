// Warnings a guest can cause as often as it likes (a connection refused, a
// socket that cannot be opened, a write that failed) are rate-limited, so
// that a flood leaves a readable log instead of millions of lines: per kind
// of warning, the first `burst` in each `interval` are logged, the rest are
// counted and reported with the next one logged after the interval.
import Logging
import SovnetLink

/// Logs warnings by kind, at most `burst` of a kind per `interval`.
public final class WarningLimiter {
    private let logger: Logger
    let burst: Int
    let interval: Duration
    private struct Window {
        var start: MonotonicInstant
        var logged = 0
        var suppressed = 0
    }
    private var windows: [String: Window] = [:]

    public init(logger: Logger, burst: Int = 5, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.burst = burst
        self.interval = interval
    }

    /// Logs `message` as a warning of kind `kind`, unless that kind has had
    /// its `burst` in this interval already.
    public func warning(_ kind: String, _ message: @autoclosure () -> Logger.Message, now: MonotonicInstant = .now) {
        var window = windows[kind] ?? Window(start: now)
        if now - window.start >= interval {
            if window.suppressed > 0 {
                logger.warning("\(window.suppressed) more warnings like the next were not logged in the last \(interval.secondsText)")
            }
            window = Window(start: now)
        }
        if window.logged < burst {
            window.logged += 1
            logger.warning(message())
        } else {
            window.suppressed += 1
        }
        windows[kind] = window
    }
}
