// The control API's way into the proxy loop: port forwards, forwards over
// SSH and the reachability checks, each call run on the loop's thread
// through its mailbox (the loop owns the forward table and the NAT).
import Dispatch
import Glibc
import Logging
import SovnetCore
import SovnetGuest
import SovnetLink
import SovnetWire

extension Proxy {

    /// A forward as this proxy binds it: under `--expose-loopback-only`,
    /// confined to loopback.
    func scoped(_ forward: PortForward) throws(PortForwardError) -> PortForward {
        options.nat.exposeLoopbackOnly ? try forward.confinedToLoopback() : forward
    }

    /// Sends an echo request from the gateway; when it was sent, or nil when
    /// no guest has `address`.
    func sendEcho(to address: IPAddress, identifier: UInt16, sequence: UInt16) -> ContinuousClock.Instant? {
        guard let request = network.echoRequest(to: address, identifier: identifier, sequence: sequence) else {
            return nil
        }
        let sent = ContinuousClock.now
        perform([request])
        return sent
    }

    /// The API's way to the forward table and the checks: each call runs on the loop's thread.
    final class LoopAccess: PortForwarding, GuestProbing, @unchecked Sendable {
        private let mailbox: LoopMailbox
        private unowned let proxy: Proxy

        init(mailbox: LoopMailbox, proxy: Proxy) {
            self.mailbox = mailbox
            self.proxy = proxy
        }

        func forwards(for requester: ForwardRequester) -> [PortForward]? {
            mailbox.perform { [proxy] in
                proxy.natSockets.forwards.forwards.filter {
                    guard case .guest(let address) = requester else { return true }
                    return $0.remote == address
                }
            }
        }

        func expose(_ forward: PortForward, by requester: ForwardRequester) -> PortForwardError? {
            mailbox.perform { [proxy] () -> PortForwardError? in
                do throws(PortForwardError) {
                    var made = try proxy.scoped(forward)
                    if case .guest(let address) = requester {
                        made = try proxy.options.guestForwards.admit(forward, guest: address,
                                                                     held: proxy.natSockets.forwards.count(madeBy: requester))
                    }
                    try proxy.natSockets.forwards.expose(made, owner: requester)
                    proxy.logger.notice("forwarding \(made) for \(requester)\(made.listensOnEveryAddress ? " (every host address)" : "")")
                    return nil
                } catch {
                    if requester != .host { proxy.warnings.warning("guest-forward", "\(requester): \(error)") }
                    return error
                }
            } ?? PortForwardError("the proxy is shutting down")
        }

        func unexpose(kind: PortForward.Kind, local: String, by requester: ForwardRequester) -> PortForwardError? {
            if kind == .unix, requester == .host, proxy.ssh?.stop(socket: local) == true {
                proxy.logger.notice("stopped forwarding \(local) over SSH")
                return nil
            }
            return mailbox.perform { [proxy] () -> PortForwardError? in
                do throws(PortForwardError) {
                    let local = proxy.options.nat.exposeLoopbackOnly ? try PortForward.loopbackLocal(kind: kind, local) : local
                    try proxy.natSockets.unexpose(kind: kind, local: local, by: requester, core: proxy.nat)
                    proxy.logger.notice("stopped forwarding \(kind) \(local) for \(requester)")
                    return nil
                } catch {
                    return error
                }
            } ?? PortForwardError("the proxy is shutting down")
        }

        func tunnels(for requester: ForwardRequester) -> [SSHTunnelSpec] {
            requester == .host ? proxy.ssh?.specs ?? [] : []
        }

        func expose(_ tunnel: SSHTunnelSpec, by requester: ForwardRequester) -> PortForwardError? {
            guard requester == .host else { return PortForwardError("only the host may forward over SSH") }
            guard let ssh = proxy.ssh else { return PortForwardError("the proxy is shutting down") }
            do throws(PortForwardError) {
                try ssh.start(tunnel)
                return nil
            } catch {
                return error
            }
        }

        /// A loopback port forward to `address`:`port` in the virtual network, for `ssh`.
        func openLoopbackPath(to address: IPv4Address, port: UInt16) -> Result<UInt16, PortForwardError> {
            mailbox.perform { [proxy] () -> Result<UInt16, PortForwardError> in
                do throws(PortForwardError) {
                    let made = try proxy.natSockets.forwards.expose(PortForward(kind: .tcp, local: "127.0.0.1:0", remote: "\(address):\(port)"),
                                                             pinned: true)
                    proxy.logger.info("forwarding \(made) for SSH")
                    return .success(made.localAddress?.1 ?? 0)
                } catch {
                    return .failure(error)
                }
            } ?? .failure(PortForwardError("the proxy is shutting down"))
        }

        func ping(_ address: IPAddress, count: Int, interval: Duration, timeout: Duration) -> PingReport {
            let identifier = UInt16.random(in: 1...UInt16.max)
            var sent: [UInt16: ContinuousClock.Instant] = [:]
            var replies: [GatewayEchoReply] = []
            let shared = proxy.shared
            for sequence in 1...UInt16(clamping: max(1, count)) {
                if sequence > 1 { sleep(interval) }
                // nil: the loop has stopped; .some(nil): no guest has the address.
                switch mailbox.perform({ [proxy] in proxy.sendEcho(to: address, identifier: identifier, sequence: sequence) }) {
                case nil:
                    return PingReport(address: "\(address)", transmitted: sent.count, roundTrips: [], error: "the proxy is shutting down")
                case .some(nil):
                    _ = shared.perform { $0.endEcho(identifier: identifier) }
                    return PingReport(address: "\(address)", transmitted: sent.count, roundTrips: [],
                                      error: "no guest has \(address)")
                case .some(let time?):
                    sent[sequence] = time
                }
                replies += shared.perform { $0.takeEchoReplies(identifier: identifier) } ?? []
            }
            let deadline = ContinuousClock.now + timeout
            while Set(replies.map(\.sequence)).count < sent.count, ContinuousClock.now < deadline {
                sleep(.milliseconds(2))
                replies += shared.perform { $0.takeEchoReplies(identifier: identifier) } ?? []
            }
            replies += shared.perform { $0.endEcho(identifier: identifier) } ?? []
            var roundTrips: [UInt16: Double] = [:]
            for reply in replies where reply.source == address {
                guard let time = sent[reply.sequence], roundTrips[reply.sequence] == nil else { continue }
                roundTrips[reply.sequence] = (reply.received - time).milliseconds
            }
            return PingReport(address: "\(address)", transmitted: sent.count,
                              roundTrips: roundTrips.sorted { $0.key < $1.key }.map(\.value))
        }

        func connect(_ address: IPAddress, port: UInt16, timeout: Duration) -> TCPCheckReport {
            let answer = HandshakeAnswer()
            let started = mailbox.perform { [proxy] () -> ContinuousClock.Instant in
                let now = ContinuousClock.now
                proxy.natSockets.probe(guest: address, port: port, core: proxy.nat, now: now) { answer.set($0) }
                return now
            }
            guard let started else {
                return TCPCheckReport(address: "\(address)", port: port, outcome: .failed, detail: "the proxy is shutting down")
            }
            guard let (outcome, time) = answer.wait(timeout: timeout) else {
                return TCPCheckReport(address: "\(address)", port: port, outcome: .timeout,
                                      detail: "no answer in \(timeout)")
            }
            let elapsed = (time - started).milliseconds
            switch outcome {
            case .open: return TCPCheckReport(address: "\(address)", port: port, outcome: .open, milliseconds: elapsed)
            case .refused:
                return TCPCheckReport(address: "\(address)", port: port, outcome: .refused, milliseconds: elapsed,
                                      detail: "connection refused (RST)")
            case .failed(let reason):
                return TCPCheckReport(address: "\(address)", port: port, outcome: .failed, detail: reason)
            }
        }

        func sleep(_ duration: Duration) {
            var time = timespec(tv_sec: Int(duration.components.seconds),
                                tv_nsec: Int(duration.components.attoseconds / 1_000_000_000))
            nanosleep(&time, nil)
        }
    }

    /// Where the loop leaves a handshake's outcome for the thread that asked.
    final class HandshakeAnswer: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var value: (TCPHandshakeOutcome, ContinuousClock.Instant)?

        func set(_ outcome: TCPHandshakeOutcome) {
            value = (outcome, .now)
            done.signal()
        }

        func wait(timeout: Duration) -> (TCPHandshakeOutcome, ContinuousClock.Instant)? {
            guard done.wait(timeout: .now() + .milliseconds(Int(timeout.milliseconds))) == .success else { return nil }
            return value
        }
    }
}
