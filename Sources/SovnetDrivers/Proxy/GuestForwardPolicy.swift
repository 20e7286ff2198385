// What a guest may do with port forwards through the gateway's port 80
// (gvproxy serves /services/forwarder/ there, and tools inside guests use
// it). The host's own API keeps full power; a guest, which may be hostile,
// may only open forwards into its own address, at most
// `maximumForwardsPerGuest` of them, never a unix socket outside
// `socketDirectory` (none without it), and never over a host service
// (its listeners are bound without SO_REUSEADDR). It may list the forwards
// into its address and remove only those it made. `--no-guest-api` turns
// the gateway's port 80 off altogether (`NATConfiguration.guestAPI`).
import Glibc
import SovnetWire

/// The limits on port forwards asked for from inside guests.
public struct GuestForwardPolicy: Sendable {
    public var maximumForwardsPerGuest = 8
    /// Where guests may create unix sockets; nil: nowhere.
    public var socketDirectory: String?

    public init() {}

    /// The forward as it will be made for `guest`, holding `held` forwards
    /// already (a unix path made canonical), or why it may not be.
    public func admit(_ forward: PortForward, guest: IPAddress, held: Int) throws(PortForwardError) -> PortForward {
        guard forward.remote == guest else {
            throw PortForwardError("a guest may forward only to its own address \(guest), not \(forward.remote)")
        }
        guard held < maximumForwardsPerGuest else {
            throw PortForwardError("guest \(guest) has \(maximumForwardsPerGuest) forwards already")
        }
        guard forward.kind == .unix else { return forward }
        guard let directory = socketDirectory.flatMap(Self.canonical) else {
            throw PortForwardError("guests may not create unix sockets on the host (see --guest-socket-dir)")
        }
        guard let path = Self.canonicalSocketPath(forward.local), path.hasPrefix(directory.hasSuffix("/") ? directory : directory + "/")
        else {
            throw PortForwardError("\(forward.local) is not under \(directory)")
        }
        var made = forward
        made.local = path
        return made
    }

    /// A socket path with its directory resolved (links, `.`, `..`), so that
    /// no spelling of a path reaches outside a directory; nil when the
    /// directory does not exist or the name is not a plain one.
    static func canonicalSocketPath(_ path: String) -> String? {
        guard let slash = path.lastIndex(of: "/") else { return nil }
        let name = String(path[path.index(after: slash)...])
        guard !name.isEmpty, name != ".", name != ".." else { return nil }
        let directory = slash == path.startIndex ? "/" : String(path[..<slash])
        guard let resolved = canonical(directory) else { return nil }
        return (resolved == "/" ? "" : resolved) + "/" + name
    }

    /// `realpath(3)` of an existing path.
    static func canonical(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
