// A thin wrapper over epoll(7): descriptors are registered with a 64-bit
// token the caller chooses, and `wait` hands back (token, events) pairs.
// epoll_ctl may be called from any thread, so another thread can add or
// remove a descriptor while the loop waits.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An epoll instance.
public final class Epoll: @unchecked Sendable {
    /// Readiness bits, as epoll spells them.
    public struct Events: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let readable = Events(rawValue: cInteger(EPOLLIN))
        public static let writable = Events(rawValue: cInteger(EPOLLOUT))
        public static let error = Events(rawValue: cInteger(EPOLLERR))
        public static let hangUp = Events(rawValue: cInteger(EPOLLHUP))
        public static let peerClosed = Events(rawValue: cInteger(EPOLLRDHUP))
        public static let edgeTriggered = Events(rawValue: cInteger(EPOLLET))
    }

    private let descriptor: Int32
    private var readyEvents: [epoll_event]

    /// Creates the instance; `capacity` is how many events one `wait` returns at most.
    public init(capacity: Int = 256) throws(LinkError) {
        descriptor = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard descriptor >= 0 else { throw LinkError.system(operation: "epoll_create1", errno: .init(rawValue: errno)) }
        readyEvents = [epoll_event](repeating: epoll_event(), count: capacity)
    }

    deinit { close(descriptor) }

    /// Registers `fd` for `events`, reported with `token`.
    public func add(_ fd: Int32, _ events: Events, token: UInt64) throws(LinkError) {
        try control(EPOLL_CTL_ADD, fd, events, token, "epoll_ctl add")
    }

    /// Changes what `fd` is watched for.
    public func modify(_ fd: Int32, _ events: Events, token: UInt64) throws(LinkError) {
        try control(EPOLL_CTL_MOD, fd, events, token, "epoll_ctl modify")
    }

    /// Stops watching `fd` (closing it does too).
    public func remove(_ fd: Int32) {
        var event = epoll_event()
        _ = epoll_ctl(descriptor, EPOLL_CTL_DEL, fd, &event)
    }

    private func control(_ operation: Int32, _ fd: Int32, _ events: Events, _ token: UInt64, _ name: String) throws(LinkError) {
        var event = epoll_event()
        event.events = events.rawValue
        event.data.u64 = token
        guard epoll_ctl(descriptor, operation, fd, &event) == 0 else {
            throw LinkError.system(operation: name, errno: .init(rawValue: errno))
        }
    }

    /// Waits up to `milliseconds` (-1: forever); returns how many descriptors
    /// are ready, each then read with `ready(_:)`. An interrupted wait returns 0.
    public func wait(milliseconds: Int32) throws(LinkError) -> Int {
        let count = readyEvents.withUnsafeMutableBufferPointer {
            epoll_wait(descriptor, $0.baseAddress, Int32($0.count), milliseconds)
        }
        if count < 0 {
            if errno == EINTR { return 0 }
            throw LinkError.system(operation: "epoll_wait", errno: .init(rawValue: errno))
        }
        return Int(count)
    }

    /// The token and events of the `index`th descriptor the last `wait` found ready.
    public func ready(_ index: Int) -> (token: UInt64, events: Events) {
        (readyEvents[index].data.u64, Events(rawValue: readyEvents[index].events))
    }
}
