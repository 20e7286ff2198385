/// What the control API may do with port forwards; the proxy carries it out
/// on its loop's thread. Each call returns nil (or the list) on success.
public protocol PortForwarding: AnyObject, Sendable {
    /// The forwards in place, or nil when the proxy is stopping.
    func forwards() -> [PortForward]?
    /// Starts a forward; a problem explains why not.
    func expose(_ forward: PortForward) -> PortForwardError?
    /// Stops the forward of `kind` listening on `local` (normalised).
    func unexpose(kind: PortForward.Kind, local: String) -> PortForwardError?
}
