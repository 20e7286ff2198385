import Foundation
import Logging
import Testing
@testable import SovnetGuest

/// Warnings a guest can cause as often as it likes, rate-limited per kind.
@Suite struct WarningLimiterTests {
    @Test func aFloodOfOneKindLeavesAFewLinesAndACount() throws {
        let path = NSTemporaryDirectory() + "warnings-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path) }
        let logger = Logger(label: "test") { SovnetLogHandler(label: $0, path: path, level: .info) }
        let limiter = WarningLimiter(logger: logger, burst: 3, interval: .seconds(10))
        let start = ContinuousClock.now
        for index in 0..<46_000 { limiter.warning("accept", "accept failed \(index)", now: start + .milliseconds(index / 10)) }
        limiter.warning("guest-write", "another kind", now: start + .seconds(1))
        limiter.warning("accept", "accept failed again", now: start + .seconds(12))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        // 46,000 over 4.6 s: three in the first window, then the count with the next one logged after it.
        #expect(lines.count == 6, "\(lines)")
        #expect(lines[0].hasSuffix("accept failed 0") && lines[2].hasSuffix("accept failed 2"))
        #expect(lines[3].hasSuffix("another kind"))
        #expect(lines[4].hasSuffix("45997 more warnings like the next were not logged in the last 10 s"), "\(lines[4])")
        #expect(lines[5].hasSuffix("accept failed again"))
    }
}
