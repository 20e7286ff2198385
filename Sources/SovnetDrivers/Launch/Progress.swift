// The launcher's progress display on standard error: one line per step with
// the time since the launch began and a verdict. On a terminal the running
// step shows a spinner and its elapsed time, redrawn in place; elsewhere
// (logs, CI) each step prints only its finished line.
import Foundation
import Glibc
import NIOConcurrencyHelpers
import SovnetGuest

/// Prints steps and their verdicts.
public final class Progress: @unchecked Sendable {
    private let started = ContinuousClock.now
    private let live: Bool
    private let lock = NIOLock()
    private var current: (name: String, since: ContinuousClock.Instant)?
    private var spinner: Thread?
    private static let frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"]

    /// `live` draws a spinner (default: when standard error is a terminal).
    public init(live: Bool = isatty(2) == 1) {
        self.live = live
    }

    /// Seconds since the launch began, as `[  1.2s]`.
    private func stamp() -> String {
        let seconds = (ContinuousClock.now - started).milliseconds / 1000
        return "[" + String(format: "%6.1fs", seconds) + "]"
    }

    /// A step begins.
    public func begin(_ name: String) {
        lock.withLock { current = (name, .now) }
        guard live else { return }
        if spinner == nil {
            let thread = Thread { [weak self] in
                var frame = 0
                while let self, self.draw(frame) {
                    frame += 1
                    usleep(100_000)
                }
            }
            spinner = thread
            thread.start()
        }
    }

    /// Redraws the running step; false once the display is closed.
    private func draw(_ frame: Int) -> Bool {
        lock.withLock {
            guard let current else { return spinner != nil }
            let elapsed = String(format: "%.1fs", (ContinuousClock.now - current.since).milliseconds / 1000)
            write("\r\u{1B}[2K\(stamp()) \(Self.frames[frame % Self.frames.count]) \(current.name)… \(elapsed)")
            return true
        }
    }

    /// The running step ended: its line, with a mark for its verdict.
    public func end(_ verdict: String, ok: Bool = true) {
        lock.withLock {
            let name = current?.name ?? ""
            current = nil
            let mark = ok ? "✓" : "✗"
            write((live ? "\r\u{1B}[2K" : "") + "\(stamp()) \(mark) \(name): \(verdict)\n")
        }
    }

    /// A line outside any step (a warning, a hint).
    public func note(_ text: String) {
        lock.withLock { write((live ? "\r\u{1B}[2K" : "") + "\(stamp())   \(text)\n") }
    }

    /// Stops the spinner.
    public func close() {
        lock.withLock {
            current = nil
            spinner = nil
        }
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
