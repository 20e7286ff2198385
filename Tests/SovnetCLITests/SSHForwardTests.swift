import Foundation
import Testing

/// Unix socket forwards over SSH, as podman machine uses them: Debian's
/// openssh-server in a guest namespace (in a mount namespace of its own, with
/// a private /run) serving `podman system service` on /run/podman/podman.sock,
/// and on the host `podman --url unix://HOST.sock version` through a proxy
/// started with podman's argument list. The guest is `sovnet forward` over
/// QEMU's stream framing, as QEMU would be.
@Suite(.enabled(if: canMakeNamespaces && FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd")
                && FileManager.default.isExecutableFile(atPath: "/usr/bin/podman"),
                "needs root, network namespaces, openssh-server and podman"), .serialized)
final class SSHForwardTests {
    let work = uniqueTemporaryPath("sshfwd")
    let host: TestNamespace
    let guest: TestNamespace
    var processes: [Spawned] = []

    init() throws {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        host = try TestNamespace("svt-sshh")
        guest = try TestNamespace("svt-sshg")
        try shell("""
            ssh-keygen -q -t ed25519 -N '' -C podman -f \(work)/id_ed25519
            ssh-keygen -q -t rsa -b 2048 -N secret -C rsa -f \(work)/id_rsa
            ssh-keygen -q -t ed25519 -N '' -f \(work)/host_key
            cat \(work)/id_ed25519.pub \(work)/id_rsa.pub > \(work)/authorized_keys
            """)
        try """
            Port 22
            ListenAddress 0.0.0.0
            HostKey \(work)/host_key
            AuthorizedKeysFile \(work)/authorized_keys
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PidFile \(work)/sshd.pid
            AllowStreamLocalForwarding yes
            """.write(toFile: work + "/sshd_config", atomically: true, encoding: .utf8)
    }

    deinit {
        processes.reversed().forEach { $0.stop() }
        guest.close()
        host.close()
        try? FileManager.default.removeItem(atPath: work)
    }

    /// Starts a process and keeps it to stop at the end.
    @discardableResult
    func start(_ command: String, log name: String) throws -> Spawned {
        let process = try Spawned(command, log: "\(work)/\(name).log")
        processes.append(process)
        return process
    }

    /// The guest's sshd and podman service, after `delay` seconds, in a mount
    /// namespace whose /run is its own (nothing of the machine's /run is touched).
    func startGuestServices(delay: Int) throws {
        try start("ip netns exec \(guest.name) unshare --mount --propagation private sh -c "
                  + quote("mount -t tmpfs tmpfs /run && mkdir -p /run/sshd /run/podman || exit 1; "
                          + "(podman system service --time=0 unix:///run/podman/podman.sock >\(work)/podman-service.log 2>&1 &); "
                          + "sleep \(delay); exec /usr/sbin/sshd -D -e -f \(work)/sshd_config"), log: "sshd")
    }

    /// `sovnet proxy` in the host namespace, then the guest's `sovnet forward` on its QEMU socket.
    func startProxyAndGuest(_ arguments: String, name: String) throws -> Spawned {
        let proxy = try start("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy \(arguments)", log: name)
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: "\(work)/\(name)-qemu.sock") }, "\(proxy.output)")
        let forward = try start("ip netns exec \(guest.name) env -i \(CommandLineTests.binary.path) forward -url unix://\(work)/\(name)-qemu.sock "
                                + "--protocol qemu -stop-if-exist ''", log: name + "-forward")
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)\n\(proxy.output)")
        return proxy
    }

    /// `podman --url unix://SOCKET version`'s server API version, or what went wrong.
    func podmanVersion(_ socket: String, seconds: Int = 60) -> String {
        do {
            return try shell("podman --url unix://\(socket) version --format '{{.Server.APIVersion}}'", seconds: seconds)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            return "\(error)"
        }
    }

    /// Ends the guest sshd's per-connection processes (the children of the one we started).
    func dropSessions() throws {
        let pid = try String(contentsOfFile: work + "/sshd.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try shell("for child in $(pgrep -P \(pid) sshd); do kill $child; done")
    }

    @Test func podmansForwardWaitsForALateSSHDAndRecoversADroppedSession() throws {
        let podman = "-listen-qemu unix://\(work)/podman-qemu.sock -pid-file \(work)/gvproxy.pid -ssh-port 42222 "
            + "-forward-sock \(work)/podman.sock -forward-dest /run/podman/podman.sock -forward-user root "
            + "-forward-identity \(work)/id_ed25519"
        let proxy = try startProxyAndGuest(podman + " -services unix://\(work)/services.sock", name: "podman")
        #expect(FileManager.default.fileExists(atPath: work + "/podman.sock"), "the host socket listens from the start")
        try startGuestServices(delay: 5)
        let started = ContinuousClock.now
        let version = podmanVersion(work + "/podman.sock")
        #expect(version == "4.3.1", "podman through the forward, once sshd came up: \(version)\n\(proxy.output)")
        #expect(ContinuousClock.now - started > .seconds(3), "the first request waited for the late sshd")
        #expect(proxy.output.contains("SSH to root@192.168.127.2:22 not up yet"), "\(proxy.output)")
        #expect(proxy.output.contains("SSH forward \(work)/podman.sock is up"), "\(proxy.output)")
        #expect(proxy.output.contains("SSH host key of 192.168.127.2: ssh-ed25519 SHA256:"), "the fingerprint is logged: \(proxy.output)")

        try dropSessions()
        #expect(waitUntil(20) { proxy.output.contains("dropped (Connection to 127.0.0.1 closed by remote host.); connecting again") }, "\(proxy.output)")
        let again = podmanVersion(work + "/podman.sock")
        #expect(again == "4.3.1", "after the session dropped: \(again)\n\(proxy.output)")

        // An RSA key with a passphrase, through the API's ssh-tunnel:// remote.
        let api = "curl -s --max-time 10 --unix-socket \(work)/services.sock"
        let tunnel = "ssh-tunnel://root@192.168.127.2:22/run/podman/podman.sock?key=\(work)/id_rsa&passphrase=secret"
        let exposed = try shell(#"\#(api) -X POST -d '{"local":"\#(work)/rsa.sock","remote":"\#(tunnel)","protocol":"unix"}' -w '%{http_code}' http://sovnet/services/forwarder/expose"#)
        #expect(exposed == "200", "\(exposed)")
        let rsa = podmanVersion(work + "/rsa.sock")
        #expect(rsa == "4.3.1", "an RSA key with a passphrase: \(rsa)\n\(proxy.output)")
        let all = try shell("\(api) http://sovnet/services/forwarder/all").replacingOccurrences(of: "\\/", with: "/")
        #expect(all.contains(#""local":"\#(work)/rsa.sock""#) && all.contains("ssh-tunnel://root@192.168.127.2:22/run/podman/podman.sock"), "\(all)")
        #expect(!all.contains("secret"), "the passphrase is never listed: \(all)")
        // The loopback forward to the guest's sshd is listed, and stays.
        let carrier = try #require(proxy.output.firstMatch(of: /forwarding tcp:(127\.0\.0\.1:\d+)=192\.168\.127\.2:22 for SSH/)?.1)
        #expect(all.contains(#""local":"\#(carrier)""#), "\(all)")
        let kept = try shell(#"\#(api) -X POST -d '{"local":"\#(carrier)"}' -w ' %{http_code}' http://sovnet/services/forwarder/unexpose"#)
        #expect(kept.contains("carries the forwards over SSH") && !kept.hasSuffix("200"), "\(kept)")
        #expect(try shell(#"\#(api) -X POST -d '{"local":"\#(work)/rsa.sock","protocol":"unix"}' -w '%{http_code}' http://sovnet/services/forwarder/unexpose"#) == "200")
        #expect(!FileManager.default.fileExists(atPath: work + "/rsa.sock"))
        let sshClients = { (try? shell("pgrep -P \(proxy.pid) -x ssh | wc -l").trimmingCharacters(in: .whitespacesAndNewlines)) ?? "?" }
        #expect(waitUntil(5) { sshClients() == "1" }, "the removed forward's ssh ended, the other runs on: \(sshClients())")
        let wrong = try shell(#"\#(api) -X POST -d '{"local":"\#(work)/bad.sock","remote":"ssh-tunnel://root@192.168.127.2/run/x.sock","protocol":"unix"}' -w ' %{http_code}' http://sovnet/services/forwarder/expose"#)
        #expect(wrong.hasSuffix("400") && wrong.contains("key="), "\(wrong)")
    }

    @Test func hostKeysAreVerifiedWhenAKnownHostsFileIsGiven() throws {
        let hostKey = try String(contentsOfFile: work + "/host_key.pub", encoding: .utf8)
        let knownHosts = work + "/known_hosts"
        try "192.168.127.2 \(hostKey)".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        try startGuestServices(delay: 0)
        let proxy = try startProxyAndGuest(
            "-listen-qemu unix://\(work)/known-qemu.sock -ssh-port -1 -forward-sock \(work)/known.sock "
                + "-forward-dest /run/podman/podman.sock -forward-user root -forward-identity \(work)/id_ed25519 "
                + "--forward-known-hosts \(knownHosts)", name: "known")
        #expect(podmanVersion(work + "/known.sock") == "4.3.1", "the right host key: \(proxy.output)")
        #expect(!proxy.output.contains("accepted, as gvproxy does"))

        let other = try shell("ssh-keygen -q -t ed25519 -N '' -f \(work)/other_key && cat \(work)/other_key.pub")
        try "192.168.127.2 \(other)".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        try dropSessions()
        #expect(waitUntil(20) { proxy.output.contains("HOST IDENTIFICATION HAS CHANGED") || proxy.output.contains("Host key verification failed") },
                "a changed host key is refused: \(proxy.output)")
        #expect(podmanVersion(work + "/known.sock", seconds: 5) != "4.3.1", "and nothing goes through")
    }
}
