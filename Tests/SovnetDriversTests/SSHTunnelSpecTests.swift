@testable import SovnetCore
import SovnetWire
import Testing
@testable import SovnetDrivers

/// gvproxy's `ssh-tunnel://` remotes, and the `ssh` command line a tunnel runs.
@Suite struct SSHTunnelSpecTests {
    @Test func anSSHTunnelRemote() throws {
        let spec = try SSHTunnelSpec(socket: "/tmp/podman.sock",
                                     url: "ssh-tunnel://core@192.168.127.2:2022/run/user/1000/podman/podman.sock?key=/home/u/.ssh/id%20rsa&passphrase=p%26ss")
        #expect(spec == SSHTunnelSpec(socket: "/tmp/podman.sock", user: "core", address: IPv4Address(192, 168, 127, 2), port: 2022,
                                      destination: "/run/user/1000/podman/podman.sock", identity: "/home/u/.ssh/id rsa", passphrase: "p&ss"))
        #expect(spec.remote == "ssh-tunnel://core@192.168.127.2:2022/run/user/1000/podman/podman.sock?key=/home/u/.ssh/id rsa")
        let plain = try SSHTunnelSpec(socket: "/tmp/a.sock", url: "ssh-tunnel://root@192.168.127.3/run/podman/podman.sock?key=/k")
        #expect(plain.port == 22 && plain.passphrase == nil)
    }

    @Test(arguments: [
        ("ssh://root@192.168.127.2/run/x.sock?key=/k", "want ssh-tunnel://"),
        ("ssh-tunnel://192.168.127.2/run/x.sock?key=/k", "want ssh-tunnel://"),
        ("ssh-tunnel://root@host.example/run/x.sock?key=/k", "bad address"),
        ("ssh-tunnel://root@192.168.127.2:0/run/x.sock?key=/k", "bad port"),
        ("ssh-tunnel://root@192.168.127.2/?key=/k", "no socket path"),
        ("ssh-tunnel://root@192.168.127.2/run/x.sock", "needs ?key="),
        ("ssh-tunnel://root@192.168.127.2/run/x.sock?key=/k&port=3", "unknown parameter 'port'"),
        ("ssh-tunnel://root@192.168.127.2/run/x.sock?key=%zz", "bad query"),
    ])
    func badRemotesSayWhy(url: String, expected: String) {
        #expect { _ = try SSHTunnelSpec(socket: "/tmp/a.sock", url: url) } throws: { "\($0)".contains(expected) }
    }

    @Test func theSSHCommandLine() {
        let spec = SSHTunnelSpec(socket: "/tmp/podman.sock", user: "core", address: IPv4Address(192, 168, 127, 2),
                                 destination: "/run/podman/podman.sock", identity: "/keys/machine")
        let accepting = SSHClientCommand(spec: spec, port: 40123, localSocket: "/tmp/sovnet-ssh-x/1/ssh.sock", knownHosts: nil)
        #expect(accepting.arguments.joined(separator: " ") == """
            ssh -F /dev/null -v -N -T -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
            -o PreferredAuthentications=publickey -o NumberOfPasswordPrompts=1 -o HostKeyAlias=192.168.127.2 \
            -o ExitOnForwardFailure=yes -o StreamLocalBindUnlink=yes -o StreamLocalBindMask=0177 \
            -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o ConnectTimeout=5 -o ControlMaster=no -o ControlPath=none \
            -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null \
            -i /keys/machine -p 40123 -l core -L /tmp/sovnet-ssh-x/1/ssh.sock:/run/podman/podman.sock 127.0.0.1
            """)
        var locked = spec
        locked.passphrase = "secret"
        let verifying = SSHClientCommand(spec: locked, port: 40123, localSocket: "/s", knownHosts: "/etc/ssh/guests")
        #expect(verifying.arguments.contains("BatchMode=no"), "askpass answers the passphrase")
        #expect(verifying.arguments.contains("StrictHostKeyChecking=yes") && verifying.arguments.contains("UserKnownHostsFile=/etc/ssh/guests"))
        #expect(!verifying.arguments.joined().contains("secret"), "the passphrase is never on a command line")
    }
}

/// The host-side parsers of #16 on damaged input: a clear error or a value, never a trap.
@Suite struct HostInputDamageTests {
    /// `text` with a few bytes changed, removed or repeated, by a seeded generator (a failure replays).
    static func damaged(_ text: String, _ random: inout SplitMix) -> String {
        var bytes = Array(text.utf8)
        for _ in 0..<Int.random(in: 1...6, using: &random) where !bytes.isEmpty {
            let index = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
            case 1: bytes.remove(at: index)
            default: bytes.insert(bytes[Int.random(in: 0..<bytes.count, using: &random)], at: index)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func damagedConfigurationFilesRemotesAndResolvConfs() {
        var random = SplitMix(seed: 16)
        for _ in 0..<3000 {
            if let file = try? GvproxyConfiguration.parse(Self.damaged(GvproxyConfigurationTests.nested, &random)) {
                var network = VirtualNetworkConfiguration()
                var nat = NATConfiguration()
                file.apply(to: &network)
                file.apply(to: &nat)
            }
            _ = try? SSHTunnelSpec(socket: "/tmp/a.sock", url: Self.damaged(
                "ssh-tunnel://core@192.168.127.2:22/run/podman/podman.sock?key=/k%20ey&passphrase=x", &random))
            _ = HostResolvConf(parsing: Self.damaged("nameserver 10.0.0.1\nnameserver [fd00::1]:53\nsearch a.test b.test\n", &random))
            _ = ResolverAddress(Self.damaged("[fe80::1%eth0]:5353", &random))
        }
    }
}
