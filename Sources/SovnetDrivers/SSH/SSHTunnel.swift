// One unix socket forward over SSH, kept up: a relay listens on the host
// socket from the start (`UnixSocketRelay`), and a thread of its own keeps
// one `ssh` process (`SSHClientCommand`) connected to the guest. While the
// guest's sshd is not up (a booting guest) the thread tries again every
// second and clients wait; when the session drops it says so and connects
// again. What `ssh` says goes to a log file in the tunnel's private
// directory, read as it grows: the host key's fingerprint and failures are
// logged, the rest dropped, and the file is kept short.
import Foundation
import Glibc
import Logging

/// A supervised SSH tunnel and the relay in front of it.
public final class SSHTunnel: @unchecked Sendable {
    public let spec: SSHTunnelSpec
    private let directory: String
    private let knownHosts: String?
    private let logger: Logger
    private let openPath: @Sendable () -> Result<UInt16, PortForwardError>
    private let relay: UnixSocketRelay
    private let condition = NSCondition()
    private var stopping = false
    private var thread: Thread?
    private var child: ChildProcess?
    /// What the last attempt that failed said, and what was last logged of it.
    private var lastProblem: String?
    private var loggedProblem: String?

    private var localSocket: String { directory + "/ssh.sock" }
    private var sshLog: String { directory + "/ssh.log" }

    /// Starts listening on `spec.socket` and connecting.
    /// - Parameters:
    ///   - directory: a private directory (mode 0700) of this tunnel's.
    ///   - openPath: opens (or finds) the loopback port forwarded to the guest's sshd.
    public init(spec: SSHTunnelSpec, directory: String, knownHosts: String?, socketMode: mode_t, logger: Logger,
                openPath: @escaping @Sendable () -> Result<UInt16, PortForwardError>) throws(PortForwardError) {
        self.spec = spec
        self.directory = directory
        self.knownHosts = knownHosts
        self.logger = logger
        self.openPath = openPath
        guard access(spec.identity, R_OK) == 0 else {
            throw PortForwardError("identity file \(spec.identity) can't be read: \(String(cString: strerror(errno)))")
        }
        guard Executable.find("ssh") != nil else {
            throw PortForwardError("unix socket forwards over SSH need OpenSSH's ssh client (Debian: openssh-client); none is in PATH")
        }
        relay = try UnixSocketRelay(listening: spec.socket, target: directory + "/ssh.sock", socketMode: socketMode, logger: logger)
        if let passphrase = spec.passphrase {
            try writePrivate(directory + "/passphrase", passphrase + "\n", mode: 0o600)
            try writePrivate(directory + "/askpass", "#!/bin/sh\nexec cat '\(directory)/passphrase'\n", mode: 0o700)
        }
        let thread = Thread { [self] in supervise() }
        thread.name = "sovnet-ssh"
        self.thread = thread
        thread.start()
        logger.notice("forwarding \(spec.socket) to \(spec.destination) in the guest over SSH (\(spec.user)@\(spec.address):\(spec.port))")
    }

    /// Stops the relay and `ssh` (signalled here, reaped by the tunnel's
    /// own thread, which alone waits for it), and removes the host socket.
    public func stop() {
        condition.lock()
        stopping = true
        if let child { kill(child.pid, SIGTERM) }
        condition.broadcast()
        condition.unlock()
        relay.stop()
    }

    private func writePrivate(_ path: String, _ text: String, mode: mode_t) throws(PortForwardError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw PortForwardError("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else {
            throw PortForwardError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Waits `duration` unless stopped; false when stopping.
    private func pause(_ duration: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if !stopping { _ = condition.wait(until: Date().addingTimeInterval(duration)) }
        return !stopping
    }

    private var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    private func supervise() {
        var failures = 0
        while !isStopping {
            let port: UInt16
            switch openPath() {
            case .success(let value): port = value
            case .failure(let error):
                logger.warning("SSH forward \(spec.socket): no way to the guest's sshd: \(error)")
                if !pause(1) { return }
                continue
            }
            let up = session(port: port)
            if isStopping { return }
            failures = up ? 0 : failures + 1
            if up {
                logger.warning("SSH session to \(spec.user)@\(spec.address):\(spec.port) dropped (\(lastProblem ?? "ssh ended")); connecting again")
                loggedProblem = nil
            } else if failures % 30 == 1 || lastProblem != loggedProblem {
                loggedProblem = lastProblem
                logger.info("SSH to \(spec.user)@\(spec.address):\(spec.port) not up yet (\(lastProblem ?? "no answer")); trying again every second")
            }
            if !pause(up ? 0.2 : 1) { return }
        }
    }

    /// One `ssh` process, until it ends; whether its forward came up.
    private func session(port: UInt16) -> Bool {
        unlink(localSocket)
        truncate(sshLog, 0)
        let command = SSHClientCommand(spec: spec, port: port, localSocket: localSocket, knownHosts: knownHosts).arguments
        let arguments = spec.passphrase == nil ? command
            : ["env", "SSH_ASKPASS=\(directory)/askpass", "SSH_ASKPASS_REQUIRE=force", "DISPLAY=sovnet"] + command
        let process: ChildProcess
        do {
            process = try ChildProcess(arguments, log: sshLog)
        } catch {
            lastProblem = "\(error)"
            return false
        }
        condition.lock()
        child = process
        if stopping { kill(process.pid, SIGTERM) }
        condition.unlock()
        var up = false
        var reader = LogReader(path: sshLog)
        lastProblem = nil
        while process.isRunning {
            for line in reader.newLines() { note(line) }
            if !up, access(localSocket, F_OK) == 0 {
                up = true
                logger.notice("SSH forward \(spec.socket) is up: \(spec.user)@\(spec.address):\(spec.port)\(spec.destination)")
            }
            usleep(up ? 100_000 : 20_000)
        }
        for line in reader.newLines() { note(line) }
        condition.lock()
        child = nil
        condition.unlock()
        return up
    }

    /// What `ssh -v` says that is neither a problem nor the host key.
    private static let chatter = ["debug", "Warning: Permanently added", "OpenSSH_", "Transferred:", "Bytes per second:"]

    /// Keeps what matters of a line `ssh -v` wrote: the host key is logged,
    /// the last problem said when the session ends or fails.
    private func note(_ line: Substring) {
        if let range = line.range(of: "Server host key: ") {
            logger.info("SSH host key of \(spec.address): \(line[range.upperBound...])\(knownHosts == nil ? " (accepted, as gvproxy does)" : "")")
        } else if !Self.chatter.contains(where: { line.hasPrefix($0) }), !line.isEmpty {
            lastProblem = String(line)
        }
    }
}

/// Reads the lines a child adds to its log file, and keeps the file short:
/// the child appends (O_APPEND), so truncating it is safe.
private struct LogReader {
    let path: String
    private var offset: off_t = 0
    private var partial: [UInt8] = []

    init(path: String) { self.path = path }

    mutating func newLines() -> [Substring] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, info.st_size < offset { offset = 0 }
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var bytes = partial
        while true {
            let count = pread(fd, &buffer, buffer.count, offset)
            guard count > 0 else { break }
            offset += off_t(count)
            bytes += buffer[..<count]
            if bytes.count > 1 << 20 { break }
        }
        if offset > 64 << 10 {
            truncate(path, 0)
            offset = 0
        }
        guard let last = bytes.lastIndex(of: UInt8(ascii: "\n")) else {
            partial = bytes
            return []
        }
        partial = Array(bytes[(last + 1)...])
        return String(decoding: bytes[...last], as: UTF8.self).split(whereSeparator: \.isNewline)
    }
}
