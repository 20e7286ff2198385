// Jobs for the proxy loop's thread from other threads (the control API, the
// gateway's DNS over TCP): a job is queued under a lock, an eventfd in the
// loop's epoll wakes the loop, which runs the queued jobs between two
// batches. `post` leaves a job and returns; `perform` waits for its result,
// a few seconds at most. At most `capacity` jobs wait: past it a job is
// refused, so a flood of requests cannot grow the queue without bound.
import CSovnetShim
import Dispatch
import Glibc
import NIOConcurrencyHelpers
import SovnetLink

final class LoopMailbox: @unchecked Sendable {
    let descriptor: Int32
    private let lock = NIOLock()
    private var jobs: [() -> Void] = []
    private var open = true
    /// The most jobs that may wait at once.
    static let capacity = 4096

    init() throws {
        descriptor = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard descriptor >= 0 else { throw LinkError.system(operation: "eventfd", errno: .init(rawValue: errno)) }
    }

    deinit { close(descriptor) }

    /// Leaves `job` for the loop's thread; false when the loop has stopped or
    /// `capacity` jobs wait already.
    func post(_ job: @escaping () -> Void) -> Bool {
        let queued = lock.withLock {
            guard open, jobs.count < Self.capacity else { return false }
            jobs.append(job)
            return true
        }
        guard queued else { return false }
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
        return true
    }

    /// Runs `body` on the loop's thread and returns its result; nil when the
    /// loop has stopped, refused the job, or did not get to it within `seconds`.
    func perform<T>(seconds: Int = 5, _ body: @escaping () -> T) -> T? {
        let slot = Slot<T>()
        let done = DispatchSemaphore(value: 0)
        let queued = post {
            slot.value = body()
            done.signal()
        }
        guard queued else { return nil }
        guard done.wait(timeout: .now() + .seconds(seconds)) == .success else { return nil }
        return slot.value
    }

    /// Runs the queued jobs; the loop calls it when the eventfd is readable.
    func drain() {
        var count: UInt64 = 0
        _ = read(descriptor, &count, 8)
        let pending = lock.withLock {
            let pending = jobs
            jobs.removeAll()
            return pending
        }
        for job in pending { job() }
    }

    /// Refuses further jobs and runs those already queued.
    func shut() {
        lock.withLock { open = false }
        drain()
    }
}

/// Where a job's result waits for the thread that asked.
private final class Slot<T>: @unchecked Sendable {
    var value: T?
}
