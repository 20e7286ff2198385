// What `sovnet-init` does with its services, sans I/O: which to start,
// which to restart and when, which to stop and how. The driver starts
// processes, reaps them and sends signals; it tells the supervisor what
// happened (`started`, `failedToStart`, `exited`, `networkReady`, `tick` at
// `nextDeadline`) and carries out the actions it gets back.
//
// Services are started in order. The first `ungated` services (the
// forwarder) start at once; the rest wait until the network is ready, or
// `networkWait` has passed. A service that exits is started again after a
// delay that doubles from `initialBackoff` to `maximumBackoff`, and goes back
// to the initial delay once a run has lasted `stableAfter`.
//
// Shutting down stops services in reverse order, one at a time: SIGTERM to
// the service's process group, SIGKILL after `stopGrace`, then the next.
// `finished` comes once the last (the first started) has exited.

import SovnetTime

/// How a process ended.
public enum ProcessExit: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// From a `waitpid` status word.
    public init(waitStatus: Int32) {
        let signal = waitStatus & 0x7F
        self = signal == 0 ? .exited((waitStatus >> 8) & 0xFF) : .signaled(signal)
    }

    public var description: String {
        switch self {
        case .exited(let code): "status \(code)"
        case .signaled(let signal): "signal \(signal)"
        }
    }
}

/// The delays and limits of supervision.
public struct SupervisionPolicy: Sendable, Equatable {
    public var initialBackoff: Duration = .seconds(1)
    public var maximumBackoff: Duration = .seconds(30)
    /// A run at least this long resets the backoff.
    public var stableAfter: Duration = .seconds(10)
    /// How long gated services wait for the network.
    public var networkWait: Duration = .seconds(15)
    /// How long a stopping service has between SIGTERM and SIGKILL.
    public var stopGrace: Duration = .seconds(10)

    public init() {}
}

/// Something the driver must do.
public enum SupervisorAction: Equatable, Sendable {
    /// Start service `index`; report `started` or `failedToStart`.
    case start(Int)
    /// Send `signal` to the process group of service `index` (led by `pid`):
    /// SIGTERM (15) or SIGKILL (9), whose numbers are the same on every Linux.
    case signal(service: Int, pid: Int32, signal: Int32)
    /// A line for the log.
    case event(SupervisorEvent)
    /// Every service has stopped: the shutdown can go on.
    case finished
}

/// What happened, for the log.
public enum SupervisorEvent: Equatable, Sendable {
    case started(service: Int, pid: Int32)
    case failedToStart(service: Int, reason: String, retryIn: Duration)
    case exited(service: Int, pid: Int32, exit: ProcessExit, ranFor: Duration, restartIn: Duration?)
    case networkWaitExpired(Duration)
    case stopping(service: Int, pid: Int32)
    case killing(service: Int, pid: Int32)
}

/// Starts, restarts and stops an ordered list of services.
public struct ServiceSupervisor: Sendable {
    public let count: Int
    public let ungated: Int
    public let policy: SupervisionPolicy

    private enum State: Equatable {
        /// Not started yet (gated, waiting for the network).
        case pending
        /// Asked the driver to start it.
        case starting
        case running(pid: Int32, since: MonotonicInstant)
        /// Waiting to be started again.
        case backingOff(until: MonotonicInstant)
        /// SIGTERM sent; SIGKILL at `killAt`.
        case stopping(pid: Int32, since: MonotonicInstant, killAt: MonotonicInstant)
        case stopped
    }

    private var states: [State]
    private var delays: [Duration]
    private var networkDeadline: MonotonicInstant?
    public private(set) var isShuttingDown = false
    private var finishedReported = false

    /// - Parameters:
    ///   - count: how many services there are.
    ///   - ungated: how many, from the first, start without waiting for the network.
    public init(count: Int, ungated: Int, policy: SupervisionPolicy = SupervisionPolicy()) {
        self.count = count
        self.ungated = min(ungated, count)
        self.policy = policy
        states = Array(repeating: .pending, count: count)
        delays = Array(repeating: policy.initialBackoff, count: count)
    }

    /// The PID of service `index` while it runs.
    public func pid(of index: Int) -> Int32? {
        switch states[index] {
        case .running(let pid, _), .stopping(let pid, _, _): pid
        default: nil
        }
    }

    /// The service a PID belongs to.
    public func service(withPID pid: Int32) -> Int? {
        states.indices.first { self.pid(of: $0) == pid }
    }

    /// Starts the ungated services; the others wait for the network.
    public mutating func start(now: MonotonicInstant) -> [SupervisorAction] {
        networkDeadline = ungated < count ? now + policy.networkWait : nil
        return (0..<ungated).map { index in
            states[index] = .starting
            return .start(index)
        }
    }

    /// The network is up: the gated services start.
    public mutating func networkReady(now: MonotonicInstant) -> [SupervisorAction] {
        guard networkDeadline != nil else { return [] }
        networkDeadline = nil
        return startPending()
    }

    /// Whether gated services are still waiting for the network.
    public var awaitingNetwork: Bool { networkDeadline != nil }

    public mutating func started(_ index: Int, pid: Int32, now: MonotonicInstant) -> [SupervisorAction] {
        states[index] = .running(pid: pid, since: now)
        let actions: [SupervisorAction] = [.event(.started(service: index, pid: pid))]
        return isShuttingDown ? actions + stopNext(now: now) : actions
    }

    public mutating func failedToStart(_ index: Int, reason: String, now: MonotonicInstant) -> [SupervisorAction] {
        if isShuttingDown {
            states[index] = .stopped
            return stopNext(now: now)
        }
        let delay = delays[index]
        delays[index] = min(delay * 2, policy.maximumBackoff)
        states[index] = .backingOff(until: now + delay)
        return [.event(.failedToStart(service: index, reason: reason, retryIn: delay))]
    }

    /// A process ended. Returns nothing for a PID that is not a service's (an orphan).
    public mutating func exited(pid: Int32, exit: ProcessExit, now: MonotonicInstant) -> [SupervisorAction] {
        guard let index = service(withPID: pid) else { return [] }
        var ranFor = Duration.zero
        switch states[index] {
        case .running(_, let since), .stopping(_, let since, _): ranFor = now - since
        default: break
        }
        if isShuttingDown {
            states[index] = .stopped
            return [.event(.exited(service: index, pid: pid, exit: exit, ranFor: ranFor, restartIn: nil))] + stopNext(now: now)
        }
        if ranFor >= policy.stableAfter { delays[index] = policy.initialBackoff }
        let delay = delays[index]
        delays[index] = min(delay * 2, policy.maximumBackoff)
        states[index] = .backingOff(until: now + delay)
        return [.event(.exited(service: index, pid: pid, exit: exit, ranFor: ranFor, restartIn: delay))]
    }

    /// When `tick` must be called next.
    public var nextDeadline: MonotonicInstant? {
        var deadlines = states.compactMap { state -> MonotonicInstant? in
            switch state {
            case .backingOff(let until): until
            case .stopping(_, _, let killAt): killAt
            default: nil
            }
        }
        if let networkDeadline { deadlines.append(networkDeadline) }
        return deadlines.min()
    }

    public mutating func tick(now: MonotonicInstant) -> [SupervisorAction] {
        var actions: [SupervisorAction] = []
        if let deadline = networkDeadline, now >= deadline {
            networkDeadline = nil
            actions.append(.event(.networkWaitExpired(policy.networkWait)))
            actions += startPending()
        }
        for index in states.indices {
            switch states[index] {
            case .backingOff(let until) where now >= until && !isShuttingDown:
                states[index] = .starting
                actions.append(.start(index))
            case .stopping(let pid, let since, let killAt) where now >= killAt:
                states[index] = .stopping(pid: pid, since: since, killAt: now + policy.stopGrace)
                actions += [.event(.killing(service: index, pid: pid)), .signal(service: index, pid: pid, signal: 9)]
            default:
                break
            }
        }
        return actions
    }

    /// Stops every service, last first.
    public mutating func shutDown(now: MonotonicInstant) -> [SupervisorAction] {
        guard !isShuttingDown else { return [] }
        isShuttingDown = true
        networkDeadline = nil
        for index in states.indices {
            switch states[index] {
            case .pending, .backingOff: states[index] = .stopped
            default: break
            }
        }
        return stopNext(now: now)
    }

    /// SIGTERM to the last service still running, or `finished`.
    private mutating func stopNext(now: MonotonicInstant) -> [SupervisorAction] {
        for index in states.indices.reversed() {
            switch states[index] {
            case .stopping, .starting:
                return []
            case .running(let pid, let since):
                states[index] = .stopping(pid: pid, since: since, killAt: now + policy.stopGrace)
                return [.event(.stopping(service: index, pid: pid)), .signal(service: index, pid: pid, signal: 15)]
            default:
                continue
            }
        }
        guard !finishedReported else { return [] }
        finishedReported = true
        return [.finished]
    }

    private mutating func startPending() -> [SupervisorAction] {
        states.indices.compactMap { index in
            guard states[index] == .pending else { return nil }
            states[index] = .starting
            return .start(index)
        }
    }
}
