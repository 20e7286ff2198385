// The files `sovnet guest install` writes for each init: the starting
// points of /etc/sovnet/services and /etc/sovnet/modules for sovnet-init,
// an OpenRC script and a systemd unit for `sovnet forward` otherwise.

/// Texts of the service files.
public enum ServiceFiles {
    public static let servicesTemplate = """
        # Services sovnet-init starts once the network is up, one command line
        # each, in order; each is restarted when it exits and stopped in
        # reverse order at shutdown. Words are split as a shell would, but no
        # shell runs: use `sh -c '...'` for redirections. Leading NAME=VALUE
        # words set variables. For example:
        #   tailscaled --state=/var/lib/tailscale/tailscaled.state
        #   su-exec postgres postgres -D /var/lib/postgresql/data

        """

    public static let modulesTemplate = """
        # Kernel modules sovnet-init loads before anything else (with their
        # dependencies; built-in ones are skipped), one per line, optionally
        # followed by parameters.
        \(GuestLayout.defaultModules.joined(separator: "\n"))

        """

    /// An OpenRC service that runs `sovnet forward` under supervise-daemon.
    public static func openrc(forwardArguments: String) -> String {
        """
        #!/sbin/openrc-run
        # sovnet forward: the guest's network (tap0, DHCP) through the host's sovnet proxy or gvproxy.
        description="sovnet forward"
        supervisor=supervise-daemon
        command=\(GuestLayout.binary)
        command_args="forward \(forwardArguments.map { $0 == "\"" ? "\\\"" : String($0) }.joined())"
        respawn_delay=1
        respawn_max=0

        depend() {
            need localmount
            provide net
            before tailscale sshd
        }

        """
    }

    /// A systemd unit that runs `sovnet forward`, restarted when it exits.
    public static func systemd(forwardArguments: String) -> String {
        """
        [Unit]
        Description=sovnet forward: the guest's network through the host
        DefaultDependencies=no
        After=local-fs.target
        Before=network.target network-online.target
        Wants=network.target

        [Service]
        ExecStart=\(GuestLayout.binary) forward \(forwardArguments)
        Restart=always
        RestartSec=1

        [Install]
        WantedBy=multi-user.target

        """
    }
}
