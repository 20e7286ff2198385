// The proxy's unix socket forwards over SSH, from the command line
// (`-forward-sock …`) and from the API (`ssh-tunnel://` remotes): each one an
// `SSHTunnel` with a private directory under one of the proxy's own (mode
// 0700, removed at exit). The way to each guest sshd is a loopback port
// forward the proxy's loop opens once per guest address and port.
import Foundation
import Glibc
import Logging
import SovnetWire

/// The running forwards over SSH.
public final class SSHForwarding: @unchecked Sendable {
    /// Opens a loopback port forward to a guest address and port; its local port.
    public typealias OpenPath = @Sendable (IPv4Address, UInt16) -> Result<UInt16, PortForwardError>

    private let knownHosts: String?
    private let socketMode: mode_t
    private let logger: Logger
    private let openPath: OpenPath
    private let lock = NSLock()
    private var tunnels: [String: SSHTunnel] = [:]
    private var paths: [String: UInt16] = [:]
    private var root: String?
    private var made = 0

    public init(knownHosts: String?, socketMode: mode_t, logger: Logger, openPath: @escaping OpenPath) {
        self.knownHosts = knownHosts
        self.socketMode = socketMode
        self.logger = logger
        self.openPath = openPath
    }

    /// The forwards running, by host socket.
    public var specs: [SSHTunnelSpec] {
        lock.lock()
        defer { lock.unlock() }
        return tunnels.values.map(\.spec).sorted { $0.socket < $1.socket }
    }

    /// Starts a forward: its host socket listens when this returns.
    public func start(_ spec: SSHTunnelSpec) throws(PortForwardError) {
        guard spec.socket.hasPrefix("/") else { throw PortForwardError("bad local '\(spec.socket)': a unix forward needs an absolute path") }
        lock.lock()
        defer { lock.unlock() }
        guard tunnels[spec.socket] == nil else { throw PortForwardError("unix \(spec.socket) is already forwarded") }
        let directory = try privateDirectory()
        let tunnel = try SSHTunnel(spec: spec, directory: directory, knownHosts: knownHosts, socketMode: socketMode,
                                   logger: logger) { [self] in path(to: spec.address, port: spec.port) }
        tunnels[spec.socket] = tunnel
    }

    /// Stops the forward listening on `socket`; false when there is none.
    @discardableResult
    public func stop(socket: String) -> Bool {
        lock.lock()
        let tunnel = tunnels.removeValue(forKey: socket)
        lock.unlock()
        tunnel?.stop()
        return tunnel != nil
    }

    /// Stops every forward and removes the private directories.
    public func stopAll() {
        lock.lock()
        let all = Array(tunnels.values)
        tunnels.removeAll()
        let root = self.root
        self.root = nil
        lock.unlock()
        all.forEach { $0.stop() }
        if let root { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The loopback port to a guest's sshd, opened on first use.
    private func path(to address: IPv4Address, port: UInt16) -> Result<UInt16, PortForwardError> {
        let key = "\(address):\(port)"
        lock.lock()
        if let known = paths[key] {
            lock.unlock()
            return .success(known)
        }
        lock.unlock()
        let opened = openPath(address, port)
        if case .success(let local) = opened {
            lock.lock()
            paths[key] = local
            lock.unlock()
        }
        return opened
    }

    /// A new directory of mode 0700 under the proxy's own; called with the lock held.
    private func privateDirectory() throws(PortForwardError) -> String {
        if root == nil {
            var template = Array((NSTemporaryDirectory() + "sovnet-ssh-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                throw PortForwardError("cannot make a private directory: \(String(cString: strerror(errno)))")
            }
            root = String(cString: made)
        }
        made += 1
        let directory = "\(root!)/\(made)"
        guard mkdir(directory, 0o700) == 0 else {
            throw PortForwardError("cannot make \(directory): \(String(cString: strerror(errno)))")
        }
        return directory
    }
}
