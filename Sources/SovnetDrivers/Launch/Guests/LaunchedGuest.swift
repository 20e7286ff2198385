// A guest `sovnet up` started, whatever runs it: a network namespace with
// `sovnet forward`, QEMU, or crosvm. The launcher starts it after the
// network is up, watches it while it serves, and stops it on the way down.

/// A running guest.
public protocol LaunchedGuest: AnyObject {
    /// What runs it, for messages (`netns sovnet-demo`, `qemu pid 812`).
    var summary: String { get }
    /// The process whose end is the guest's end.
    var process: ChildProcess? { get }
    /// Starts the guest; the network is already up.
    func start() throws
    /// Runs after the lease: the guest's own services (netns), nothing elsewhere.
    func leased() throws
    /// Why the guest ended, once it has, in the user's terms.
    func ended(status: Int32) -> (ok: Bool, message: String)
    /// The end of the guest's console, for failure reports.
    func consoleTail(lines: Int) -> String
    /// Stops the guest, gracefully first, and removes what it made.
    func stop()
}
