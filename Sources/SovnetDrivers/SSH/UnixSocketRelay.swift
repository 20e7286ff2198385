// The host end of a forward over SSH: listens on the host socket from the
// proxy's start, and joins each client to the tunnel's own socket as soon as
// that accepts (for up to a minute: a booting guest's sshd may come late).
// A thread per client copies both ways with poll(2), passing on a half-close,
// so HTTP clients that shut down their write side (podman's) get their
// answers. At most 128 clients at once; more are closed at once, logged.
import Foundation
import CSovnetShim
import Glibc
import Logging
import SovnetLink

/// Relays the connections of a listening unix socket to another unix socket.
final class UnixSocketRelay: @unchecked Sendable {
    static let maximumClients = 128
    /// How long a client waits for the tunnel to come up.
    static let connectPatience: Double = 60

    private let path: String
    private let target: String
    private let logger: Logger
    private let listener: Int32
    private let lock = NSLock()
    private var clients = 0
    private var stopping = false

    init(listening path: String, target: String, socketMode: mode_t, logger: Logger) throws(PortForwardError) {
        self.path = path
        self.target = target
        self.logger = logger
        do {
            listener = try makeListeningSocket(.unix(path: path), mode: socketMode)
        } catch {
            throw PortForwardError("\(path): \(error)")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "sovnet-relay"
        thread.start()
    }

    /// Stops accepting, removes the socket; clients already joined finish.
    func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        unlink(path)
    }

    private var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let client = accept(listener, nil, nil)
            if isStopping {
                if client >= 0 { close(client) }
                return
            }
            guard client >= 0 else {
                if errno == EINTR || errno == ECONNABORTED { continue }
                logger.warning("SSH forward \(path): accept: \(String(cString: strerror(errno)))")
                usleep(100_000)
                continue
            }
            lock.lock()
            let admitted = clients < Self.maximumClients
            if admitted { clients += 1 }
            lock.unlock()
            guard admitted else {
                logger.warning("SSH forward \(path): \(Self.maximumClients) clients already; one refused")
                close(client)
                continue
            }
            let thread = Thread { [self] in
                serve(client)
                lock.lock()
                clients -= 1
                lock.unlock()
            }
            thread.name = "sovnet-relay-client"
            thread.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        let deadline = Date().addingTimeInterval(Self.connectPatience)
        var connected = connectTarget()
        while connected == nil {
            guard Date() < deadline, !isStopping else {
                logger.warning("SSH forward \(path): the tunnel did not come up within \(Int(Self.connectPatience)) s; a client closed")
                return
            }
            usleep(100_000)
            connected = connectTarget()
        }
        guard let upstream = connected else { return }
        defer { close(upstream) }
        Self.copyBothWays(client, upstream)
    }

    /// A socket connected to the tunnel's end, or nil while it is not up.
    private func connectTarget() -> Int32? {
        let fd = socket(AF_UNIX, SocketType.stream | SocketType.closeOnExec, 0)
        guard fd >= 0 else { return nil }
        guard SocketProbe.connect(fd, unixPath: target) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Copies until both directions have ended; a read's end becomes a
    /// half-close of the other side.
    static func copyBothWays(_ a: Int32, _ b: Int32) {
        var open = [true, true]
        let ends = [(a, b), (b, a)]
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while open[0] || open[1] {
            var watched = ends.indices.filter { open[$0] }.map { pollfd(fd: ends[$0].0, events: Int16(POLLIN), revents: 0) }
            guard poll(&watched, nfds_t(watched.count), -1) >= 0 || errno == EINTR else { return }
            for (index, (from, to)) in ends.enumerated() where open[index] {
                guard let ready = watched.first(where: { $0.fd == from }), ready.revents != 0 else { continue }
                let count = read(from, &buffer, buffer.count)
                if count < 0, errno == EINTR || errno == EAGAIN { continue }
                if count <= 0 {
                    open[index] = false
                    shutdown(to, Int32(SHUT_WR))
                    if count < 0 { return }
                    continue
                }
                var sent = 0
                while sent < count {
                    let written = buffer[sent..<count].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if written < 0, errno == EINTR { continue }
                    guard written > 0 else { return }
                    sent += written
                }
            }
        }
    }
}
