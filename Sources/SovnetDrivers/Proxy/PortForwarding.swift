import SovnetWire

/// Who asks for a change to the port forwards: the host (the command line,
/// `--services`, the `-listen` sockets) with full power, or a guest, through
/// the gateway's port 80 inside the virtual network, under the
/// `GuestForwardPolicy`.
public enum ForwardRequester: Hashable, Sendable, CustomStringConvertible {
    case host
    case guest(IPAddress)

    public var description: String {
        switch self {
        case .host: "the host"
        case .guest(let address): "guest \(address)"
        }
    }
}

/// What the control API may do with port forwards; the proxy carries it out
/// on its loop's thread. Each call returns nil (or the list) on success.
public protocol PortForwarding: AnyObject, Sendable {
    /// The forwards `requester` may see, or nil when the proxy is stopping:
    /// all of them for the host; for a guest, those into its own address.
    func forwards(for requester: ForwardRequester) -> [PortForward]?
    /// Starts a forward; a problem explains why not.
    func expose(_ forward: PortForward, by requester: ForwardRequester) -> PortForwardError?
    /// Stops the forward of `kind` listening on `local` (normalised); a guest
    /// may stop only those it made.
    /// Stops a unix socket forward over SSH too, by its host socket.
    func unexpose(kind: PortForward.Kind, local: String, by requester: ForwardRequester) -> PortForwardError?
    /// The unix socket forwards over SSH, which only the host may see.
    func tunnels(for requester: ForwardRequester) -> [SSHTunnelSpec]
    /// Starts a unix socket forward over SSH; only the host may.
    func expose(_ tunnel: SSHTunnelSpec, by requester: ForwardRequester) -> PortForwardError?
}
