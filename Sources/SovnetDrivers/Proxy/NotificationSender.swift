// gvproxy's `-notification unix:///PATH`: the proxy tells a supervisor (podman
// machine, for one) about its life by connecting to a unix socket the
// supervisor listens on and writing one JSON object and a newline:
//
//   {"notification_type":"ready"}                     listeners and forwards are up
//   {"notification_type":"connection_established","mac_address":"5a:94:ef:e4:0c:ee"}
//                                                     a guest connected and sent its first frame
//   {"notification_type":"connection_closed","mac_address":"…"}
//   {"notification_type":"hypervisor_error"}          a guest listener could not be set up or accept
//
// One connection per message, as gvproxy makes them. The proxy's loop only
// queues; a thread of its own connects and writes, each connect and write
// bounded by a one-second timeout, so a supervisor that does not read never
// slows the network. At most 64 messages wait; past that new ones are
// dropped, and how many is logged.
import CSovnetShim
import Foundation
import Glibc
import Logging
import SovnetLink

/// Sends gvproxy's lifecycle notifications to a unix socket.
public final class NotificationSender: @unchecked Sendable {
    /// What happened, as gvproxy names it.
    public enum Event: String, Sendable {
        case ready
        case connectionEstablished = "connection_established"
        case connectionClosed = "connection_closed"
        case hypervisorError = "hypervisor_error"
    }

    /// The most messages waiting to be sent.
    public static let queueLimit = 64

    private let path: String
    private let logger: Logger
    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var dropped = 0
    private var closing = false
    private var thread: Thread?

    /// A sender to the socket at `path`; it starts sending at once.
    public init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "sovnet-notify"
        self.thread = thread
        thread.start()
    }

    /// The bytes of one message: a JSON object and a newline.
    public static func message(_ event: Event, mac: String? = nil) -> [UInt8] {
        var text = #"{"notification_type":"\#(event.rawValue)""#
        if let mac { text += #","mac_address":"\#(mac)""# }
        return Array((text + "}\n").utf8)
    }

    /// Queues a notification; never blocks.
    public func send(_ event: Event, mac: String? = nil) {
        condition.lock()
        defer { condition.unlock() }
        guard queue.count < Self.queueLimit else {
            dropped += 1
            return
        }
        queue.append(Self.message(event, mac: mac))
        condition.signal()
    }

    /// Sends what is queued (for at most `timeout`), then stops the thread.
    public func finish(timeout: Duration = .seconds(2)) {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        condition.lock()
        closing = true
        condition.broadcast()
        while !queue.isEmpty, condition.wait(until: deadline) {}
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty, !closing { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let message = queue[0]
            let lost = dropped
            dropped = 0
            condition.unlock()
            if lost > 0 { logger.warning("notification socket \(path): \(lost) notifications dropped, the supervisor did not keep up") }
            if let problem = deliver(message) {
                logger.warning("notification socket \(path): \(problem)")
            }
            condition.lock()
            queue.removeFirst()
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Connects, writes `message` whole and closes; nil or what went wrong.
    private func deliver(_ message: [UInt8]) -> String? {
        let fd = socket(AF_UNIX, SocketType.stream | SocketType.closeOnExec, 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var limit = timeval(tv_sec: 1, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard SocketProbe.connect(fd, unixPath: path) == 0 else {
            return "connect: \(String(cString: strerror(errno)))"
        }
        var sent = 0
        while sent < message.count {
            let written = message[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return "write: \(String(cString: strerror(errno)))" }
            sent += written
        }
        return nil
    }
}
