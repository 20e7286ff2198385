import Glibc
import SovnetLink
import Testing

/// When a packet loop polls instead of sleeping: only within the window
/// after work, yielding after each empty poll, until work or the window's end.
@Suite struct BusyPollTests {
    @Test func anIdleLoopSleepsAndNeverYields() {
        var poller = BusyPoll(window: .seconds(10))
        var timeouts: [Int32] = []
        for _ in 0..<3 { _ = poller.wait(idle: 250) { timeouts.append($0); return 0 } }
        #expect(timeouts == [250, 250, 250] && poller.yields == 0)
    }

    @Test func afterWorkTheWaitPollsAndYieldsUntilWorkComes() {
        var poller = BusyPoll(window: .seconds(10))
        var timeouts: [Int32] = []
        #expect(poller.wait(idle: -1) { timeouts.append($0); return 2 } == 2)
        #expect(poller.wait(idle: -1) { timeouts.append($0); return timeouts.count < 4 ? 0 : 1 } == 1)
        #expect(timeouts == [-1, 0, 0, 0] && poller.yields == 2, "two empty polls, each followed by a yield")
        // An interrupted wait returns at once, and gives nothing away.
        #expect(poller.wait(idle: -1) { timeouts.append($0); return -1 } == -1)
        #expect(timeouts.count == 5 && poller.yields == 2)
    }

    @Test func pendingWorkEndsThePollingAfterOneEmptyPoll() {
        var poller = BusyPoll(window: .seconds(10))
        _ = poller.wait(idle: -1) { _ in 1 }
        var polls = 0
        var idleAsked = 0
        let ready = poller.wait(idle: { idleAsked += 1; return 0 }()) { _ in polls += 1; return 0 }
        #expect(ready == 0 && polls == 1 && idleAsked == 1 && poller.yields == 0)
    }

    @Test func theWindowEndsWithoutWorkAndStartsAgainWithIt() {
        var poller = BusyPoll(window: .milliseconds(50))
        _ = poller.wait(idle: 100) { _ in 1 }
        #expect(poller.isPolling(now: .now) && !poller.isPolling(now: .now + .milliseconds(51)))
        usleep(30_000)
        #expect(poller.wait(idle: 100) { $0 == 0 ? 1 : 0 } == 1, "polled, and found work")
        #expect(poller.isPolling(now: .now + .milliseconds(30)), "the second work started the window again")
        var timeouts: Set<Int32> = []
        let started = ContinuousClock.now
        #expect(poller.wait(idle: 100) { timeouts.insert($0); return 0 } == 0)
        let spun = ContinuousClock.now - started
        #expect(timeouts == [0] && poller.yields > 0, "only polls, until the window ended")
        #expect(spun >= .milliseconds(15) && spun < .seconds(5), "\(spun)")
        var timeout: Int32?
        _ = poller.wait(idle: 100) { timeout = $0; return 0 }
        #expect(timeout == 100, "past the window the loop sleeps again")
    }

    @Test func aZeroWindowNeverPolls() {
        var poller = BusyPoll(window: .zero)
        var timeouts: [Int32] = []
        _ = poller.wait(idle: 7) { timeouts.append($0); return 1 }
        _ = poller.wait(idle: 7) { timeouts.append($0); return 0 }
        #expect(timeouts == [7, 7] && poller.yields == 0 && BusyPoll(window: .seconds(-1)).window == .zero)
    }

    /// With a real descriptor: a wait in the window polls an empty pipe
    /// until the window ends, where a sleeping one would wait out its
    /// timeout, and returns as soon as a byte is written.
    @Test func aPollingWaitOnAPipe() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        var poller = BusyPoll(window: .milliseconds(20))
        var descriptor = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
        #expect(write(ends[1], "x", 1) == 1)
        #expect(poller.wait(idle: 10_000) { Int(poll(&descriptor, 1, $0)) } == 1)
        var byte: UInt8 = 0
        #expect(read(ends[0], &byte, 1) == 1)
        let started = ContinuousClock.now
        #expect(poller.wait(idle: 10_000) { Int(poll(&descriptor, 1, $0)) } == 0)
        #expect(ContinuousClock.now - started < .seconds(5) && poller.yields > 0)
        #expect(write(ends[1], "y", 1) == 1)
        #expect(poller.wait(idle: 10_000) { Int(poll(&descriptor, 1, $0)) } == 1, "the window is over: a sleeping wait")
    }
}
