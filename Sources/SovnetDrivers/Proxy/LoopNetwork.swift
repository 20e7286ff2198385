// How threads other than the proxy loop's reach the virtual network. The
// loop owns the network and uses it without a lock; the control API and the
// gateway's DNS over TCP (on SwiftNIO's thread) hand it jobs through the
// loop's mailbox and get the results as futures, so no thread waits on a
// lock that the loop holds across its system calls. The loop serves its
// mailbox every turn, a bounded amount of work even under a flood; a job it
// does not get to within `answerTimeout`, or refuses (stopped, mailbox
// full), gets nil, and reads then take what the loop last published (the
// NAT's statistics and a snapshot of the network, at most
// `Proxy.publishInterval` old).
import NIOConcurrencyHelpers
import NIOCore
import SovnetCore

/// The loop's network, as other threads reach it.
public final class LoopNetwork: @unchecked Sendable {
    /// Touched only by jobs run on the loop's thread.
    private let network: VirtualNetwork
    private let mailbox: LoopMailbox
    private struct Published {
        var nat = NATStatistics()
        var snapshot: ControlAPI.Snapshot
        var forwarding: PortForwarding?
        var probing: GuestProbing?
    }
    private let published: NIOLockedValueBox<Published>
    /// How long a job may wait for the loop before its caller goes on without it.
    static let answerTimeout = TimeAmount.seconds(2)

    init(_ network: VirtualNetwork, mailbox: LoopMailbox) {
        self.network = network
        self.mailbox = mailbox
        published = NIOLockedValueBox(Published(snapshot: ControlAPI.Snapshot(network)))
    }

    /// Runs `body` with the network on the loop's thread; the future, on
    /// `eventLoop`, gets its result, or nil when the loop refused the job or
    /// did not run it within `answerTimeout`.
    func run<T: Sendable>(on eventLoop: EventLoop, _ body: @escaping (VirtualNetwork) -> T) -> EventLoopFuture<T?> {
        let promise = eventLoop.makePromise(of: T?.self)
        let answered = NIOLockedValueBox(false)
        let answer: @Sendable (T?) -> Void = { value in
            guard answered.withLockedValue({ done in defer { done = true }; return !done }) else { return }
            promise.succeed(value)
        }
        let network = self.network
        guard mailbox.post({ answer(body(network)) }) else {
            answer(nil)
            return promise.futureResult
        }
        let timer = eventLoop.scheduleTask(in: Self.answerTimeout) { answer(nil) }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return promise.futureResult
    }

    /// Runs `body` with the network on the loop's thread and waits for its
    /// result; for threads that may block (never SwiftNIO's). Nil when the
    /// loop refused the job or did not run it within a few seconds.
    func perform<T>(_ body: @escaping (VirtualNetwork) -> T) -> T? {
        let network = self.network
        return mailbox.perform { body(network) }
    }

    /// A snapshot for the API's read-only routes: taken on the loop, or the
    /// one it last published when it cannot answer in time.
    func snapshot(on eventLoop: EventLoop) -> EventLoopFuture<ControlAPI.Snapshot> {
        let nat = self.nat
        return run(on: eventLoop) { ControlAPI.Snapshot($0, nat: nat) }.map { [published] taken in
            taken ?? published.withLockedValue { $0.snapshot }
        }
    }

    /// Publishes the NAT's statistics and a snapshot of the network; from the loop.
    func publish(nat: NATStatistics) {
        let snapshot = ControlAPI.Snapshot(network, nat: nat)
        published.withLockedValue {
            $0.nat = nat
            $0.snapshot = snapshot
        }
    }

    /// The NAT's statistics as the loop last published them.
    public var nat: NATStatistics { published.withLockedValue { $0.nat } }

    /// Where the API's forwarder routes go; nil until the loop runs.
    public var forwarding: PortForwarding? {
        get { published.withLockedValue { $0.forwarding } }
        set { published.withLockedValue { $0.forwarding = newValue } }
    }

    /// Where the API's check routes go; nil until the loop runs.
    public var probing: GuestProbing? {
        get { published.withLockedValue { $0.probing } }
        set { published.withLockedValue { $0.probing = newValue } }
    }
}
