import SovnetLink
import Testing

/// poll(2) milliseconds: rounded up, never early, never negative but for "for ever".
@Suite struct PollTimeoutTests {
    @Test func roundedUpAndBounded() {
        #expect(PollTimeout.milliseconds(.nanoseconds(1)) == 1)
        #expect(PollTimeout.milliseconds(.milliseconds(5)) == 5)
        #expect(PollTimeout.milliseconds(.microseconds(5_001)) == 6)
        #expect(PollTimeout.milliseconds(.zero) == 0 && PollTimeout.milliseconds(.seconds(-3)) == 0)
        #expect(PollTimeout.milliseconds(.seconds(Int64.max / 2)) == Int32.max)
        let now = ContinuousClock.now
        #expect(PollTimeout.milliseconds(until: nil, now: now) == -1)
        #expect(PollTimeout.milliseconds(until: now - .seconds(1), now: now) == 0)
        #expect(PollTimeout.milliseconds(until: now + .milliseconds(250), now: now) == 250)
    }
}
