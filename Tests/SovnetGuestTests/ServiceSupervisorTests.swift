import Testing
@testable import SovnetGuestCore

/// `sovnet-init`'s supervision driven by a fake clock: order, the network
/// gate, restarts with backoff, and shutdown in reverse order.
@Suite struct ServiceSupervisorTests {
    let t0 = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }

    func starts(_ actions: [SupervisorAction]) -> [Int] {
        actions.compactMap { if case .start(let index) = $0 { index } else { nil } }
    }

    func signals(_ actions: [SupervisorAction]) -> [[Int32]] {
        actions.compactMap { if case .signal(let index, let pid, let signal) = $0 { [Int32(index), pid, signal] } else { nil } }
    }

    @Test func theForwarderFirstThenServicesOnceTheNetworkIsUp() {
        var supervisor = ServiceSupervisor(count: 3, ungated: 1)
        #expect(starts(supervisor.start(now: at(0))) == [0])
        _ = supervisor.started(0, pid: 10, now: at(0))
        #expect(supervisor.awaitingNetwork && supervisor.nextDeadline == at(15))
        #expect(starts(supervisor.tick(now: at(1))).isEmpty)
        #expect(starts(supervisor.networkReady(now: at(2))) == [1, 2])
        #expect(!supervisor.awaitingNetwork)
        #expect(supervisor.networkReady(now: at(3)).isEmpty, "once")
    }

    @Test func servicesStartAnywayWhenTheNetworkDoesNotComeUp() {
        var supervisor = ServiceSupervisor(count: 2, ungated: 1)
        _ = supervisor.start(now: at(0))
        let actions = supervisor.tick(now: at(15))
        #expect(actions.contains(.event(.networkWaitExpired(.seconds(15)))))
        #expect(starts(actions) == [1])
    }

    @Test func restartsBackOffAndAStableRunResetsTheDelay() {
        var supervisor = ServiceSupervisor(count: 1, ungated: 1)
        _ = supervisor.start(now: at(0))
        _ = supervisor.started(0, pid: 100, now: at(0))
        var now = 0.0
        var pid: Int32 = 100
        for expected in [1.0, 2, 4, 8, 16, 30, 30] {
            let exit = supervisor.exited(pid: pid, exit: .exited(1), now: at(now + 0.5))
            #expect(exit.contains { if case .event(.exited(0, pid, .exited(1), _, .some(.milliseconds(Int64(expected * 1000))))) = $0 { true } else { false } },
                    "\(exit)")
            #expect(starts(supervisor.tick(now: at(now + 0.5 + expected - 0.01))).isEmpty)
            #expect(starts(supervisor.tick(now: at(now + 0.5 + expected))) == [0])
            now += 0.5 + expected
            pid += 1
            _ = supervisor.started(0, pid: pid, now: at(now))
        }
        // Ten seconds of running: the next restart waits one second again.
        let exit = supervisor.exited(pid: pid, exit: .signaled(11), now: at(now + 10))
        #expect(exit.contains { if case .event(.exited(_, _, .signaled(11), .seconds(10), .some(.seconds(1)))) = $0 { true } else { false } })
    }

    @Test func failedStartsAreRetried() {
        var supervisor = ServiceSupervisor(count: 1, ungated: 1)
        _ = supervisor.start(now: at(0))
        let actions = supervisor.failedToStart(0, reason: "No such file or directory", now: at(0))
        #expect(actions == [.event(.failedToStart(service: 0, reason: "No such file or directory", retryIn: .seconds(1)))])
        #expect(starts(supervisor.tick(now: at(1))) == [0])
    }

    @Test func orphansAreNotServices() {
        var supervisor = ServiceSupervisor(count: 1, ungated: 1)
        _ = supervisor.start(now: at(0))
        _ = supervisor.started(0, pid: 5, now: at(0))
        #expect(supervisor.exited(pid: 77, exit: .exited(0), now: at(1)).isEmpty)
        #expect(supervisor.pid(of: 0) == 5)
    }

    @Test func shutdownStopsInReverseOrderOneAtATime() {
        var supervisor = ServiceSupervisor(count: 3, ungated: 1)
        _ = supervisor.start(now: at(0))
        _ = supervisor.started(0, pid: 10, now: at(0))
        _ = supervisor.networkReady(now: at(1))
        _ = supervisor.started(1, pid: 11, now: at(1))
        _ = supervisor.started(2, pid: 12, now: at(1))
        #expect(signals(supervisor.shutDown(now: at(5))) == [[2, 12, 15]])
        #expect(supervisor.shutDown(now: at(5)).isEmpty, "once")
        // Service 2 ignores SIGTERM: SIGKILL after the grace.
        #expect(signals(supervisor.tick(now: at(14.9))).isEmpty)
        #expect(signals(supervisor.tick(now: at(15))) == [[2, 12, 9]])
        #expect(signals(supervisor.exited(pid: 12, exit: .signaled(9), now: at(15.1))) == [[1, 11, 15]])
        #expect(signals(supervisor.exited(pid: 11, exit: .exited(0), now: at(15.2))) == [[0, 10, 15]])
        #expect(supervisor.exited(pid: 10, exit: .exited(0), now: at(15.3)).last == .finished)
        #expect(supervisor.nextDeadline == nil)
    }

    @Test func shutdownWhileServicesBackOffOrWaitForTheNetwork() {
        var supervisor = ServiceSupervisor(count: 3, ungated: 1)
        _ = supervisor.start(now: at(0))
        _ = supervisor.started(0, pid: 10, now: at(0))
        // Services 1 and 2 still wait for the network; the forwarder is stopped alone.
        #expect(signals(supervisor.shutDown(now: at(1))) == [[0, 10, 15]])
        #expect(starts(supervisor.tick(now: at(20))).isEmpty, "nothing starts while shutting down")
        #expect(supervisor.exited(pid: 10, exit: .exited(0), now: at(2)).last == .finished)
    }

    @Test func aServiceStartedDuringShutdownIsStoppedAtOnce() {
        var supervisor = ServiceSupervisor(count: 1, ungated: 1)
        _ = supervisor.start(now: at(0))
        #expect(supervisor.shutDown(now: at(0)).isEmpty, "waits for the start it asked for")
        #expect(signals(supervisor.started(0, pid: 3, now: at(0.1))) == [[0, 3, 15]])
    }

    @Test func waitStatusWords() {
        #expect(ProcessExit(waitStatus: 0x0100) == .exited(1))
        #expect(ProcessExit(waitStatus: 0x0009) == .signaled(9))
        #expect(ProcessExit(waitStatus: 0).description == "status 0")
    }
}
