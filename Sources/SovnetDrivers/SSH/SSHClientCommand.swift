// The OpenSSH client command line of one tunnel. The proxy does not speak
// SSH itself: the toolchain's swift-nio-ssh (0.15.1) can open neither the
// `direct-streamlocal@openssh.com` channels a unix socket forward needs nor
// sign with RSA keys, and reads no OpenSSH key files; OpenSSH's own `ssh`,
// which podman machine needs anyway for `podman machine ssh`, does all of it.
//
// One `ssh` process is one SSH connection: every client of the host socket
// becomes one direct-streamlocal channel of it (`-L LOCAL.sock:GUEST.sock`).
// It reaches the guest's sshd through the virtual network, by a loopback
// port forward the proxy opens for it. Nothing of the user's ssh
// configuration, agent or known_hosts file is read or written: the key is the
// one given (`IdentitiesOnly`), host keys are accepted as gvproxy accepts
// them (its fingerprint logged) unless a known_hosts file is given, and dead
// sessions are noticed within 15 s (`ServerAliveInterval` 5 × 3).

/// Builds the `ssh` argument list for a tunnel.
public struct SSHClientCommand: Sendable, Equatable {
    public var spec: SSHTunnelSpec
    /// The loopback port forwarded to the guest's sshd.
    public var port: UInt16
    /// Where `ssh` listens for the proxy's relay.
    public var localSocket: String
    /// Verify host keys against this file (by the guest's address) instead of accepting them.
    public var knownHosts: String?

    public init(spec: SSHTunnelSpec, port: UInt16, localSocket: String, knownHosts: String?) {
        self.spec = spec
        self.port = port
        self.localSocket = localSocket
        self.knownHosts = knownHosts
    }

    /// `ssh` and its arguments.
    public var arguments: [String] {
        var options = [
            "BatchMode=\(spec.passphrase == nil ? "yes" : "no")",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "PreferredAuthentications=publickey",
            "NumberOfPasswordPrompts=1",
            "HostKeyAlias=\(spec.address)",
            "ExitOnForwardFailure=yes",
            "StreamLocalBindUnlink=yes",
            "StreamLocalBindMask=0177",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=3",
            "ConnectTimeout=5",
            "ControlMaster=no",
            "ControlPath=none",
        ]
        if let knownHosts {
            options += ["StrictHostKeyChecking=yes", "UserKnownHostsFile=\(knownHosts)", "GlobalKnownHostsFile=/dev/null"]
        } else {
            options += ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "GlobalKnownHostsFile=/dev/null"]
        }
        return ["ssh", "-F", "/dev/null", "-v", "-N", "-T"] + options.flatMap { ["-o", $0] }
            + ["-i", spec.identity, "-p", "\(port)", "-l", spec.user,
               "-L", "\(localSocket):\(spec.destination)", "127.0.0.1"]
    }
}
