import Foundation
import Testing

/// `sovnet up`, `status`, `check` and `down` for real: a netns guest
/// launched by the binary inside a test namespace (so the in-process proxy's
/// NAT reaches only that namespace), with a service in the guest, the
/// gateway's ping and TCP handshakes, tailscaled's LocalAPI and the host's
/// `tailscale` played by stand-ins (`Tests/Peers/tailscale/`).
@Suite(.serialized, .enabled(if: canMakeNamespaces, "needs root and iproute2 (network namespaces)"))
struct LaunchTests {
    static let standIns = CommandLineTests.root.path + "/Tests/Peers/tailscale"

    /// A work folder, the host namespace the launcher runs in, and the LocalAPI stand-in.
    final class Setup {
        let work: String
        let host: TestNamespace
        let localAPI: Spawned
        let name: String

        init(_ name: String, status: String = "status-running.json") throws {
            self.name = name
            work = NSTemporaryDirectory() + "sovnet-up-\(name)-\(getpid())"
            try FileManager.default.createDirectory(atPath: work + "/run", withIntermediateDirectories: true)
            host = try TestNamespace("svt-up")
            localAPI = try Spawned("python3 -u \(LaunchTests.standIns)/localapi.py \(work)/tailscaled.sock \(LaunchTests.standIns)/\(status)",
                                   log: work + "/localapi.log")
            #expect(waitUntil(10) { localAPI.output.contains("serving") }, "\(localAPI.output)")
        }

        func configuration(ports: [Int], extra: String = "") throws -> String {
            let text = """
                \(extra)name: \(name)
                guest:
                  kind: netns
                  mac: 5a:94:ef:e4:0c:42
                  services:
                    - python3 -m http.server 8080 --bind 0.0.0.0
                checks:
                  lease-timeout: 20
                  ping: 3
                  tcp: [\(ports.map(String.init).joined(separator: ", "))]
                  tailscale:
                    localapi: \(work)/tailscaled.sock
                    host-ping: "true"
                """
            let path = work + "/sovnet.yaml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// `sovnet ARGS` inside the host namespace, with the stand-in `tailscale` first in PATH.
        func sovnet(_ arguments: String) -> String {
            "ip netns exec \(host.name) env PATH=\(LaunchTests.standIns):/usr/sbin:/usr/bin:/sbin:/bin "
                + "\(CommandLineTests.binary.path) \(arguments) --run-dir \(work)/run"
        }

        deinit {
            localAPI.stop()
            host.close()
            try? FileManager.default.removeItem(atPath: work)
        }
    }

    struct Report: Decodable {
        struct Result: Decodable {
            var name: String
            var verdict: String
            var detail: String
            var tailscalePing: TailscalePing?
        }

        struct TailscalePing: Decodable {
            var path: String?
            var via: String?
            var pongs: Int
        }

        var guestAddress: String?
        var results: [Result]
        func result(_ name: String) -> Result? { results.first { $0.name == name } }
    }

    @Test func onceChecksEverythingAndLeavesNothingBehind() throws {
        let setup = try Setup("once")
        // A dead socket where the API goes: removed, as a crashed launcher's would be.
        try shell("python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind(\"\(setup.work)/run/api.sock\")'")
        let config = try setup.configuration(ports: [8080])
        let up = try Spawned(setup.sovnet("up --config \(config) --once --json"), log: setup.work + "/up.log")
        let status = up.wait(90)
        let output = up.output
        #expect(status == 0, "\(output)")
        let json = String(output[output.firstIndex(of: "{")!...])
        let report = try JSONDecoder().decode(Report.self, from: Data(json.utf8))
        // gvproxy leases .2 to its default MAC only; another MAC gets the next address.
        #expect(report.guestAddress == "192.168.127.3")
        for name in ["preflight", "sockets", "network", "guest", "lease", "services", "ping", "tcp 8080", "tailscale", "tailscale ping"] {
            #expect(report.result(name)?.verdict == "pass", "\(name): \(output)")
        }
        #expect(report.result("sockets")?.detail.contains("removed stale api.sock") == true)
        #expect(report.result("ping")?.detail.hasPrefix("3 transmitted, 3 received, 0% loss, rtt min/avg/max = ") == true)
        #expect(report.result("tailscale")?.detail.contains("backend Running, online, 100.101.102.103") == true)
        let ping = report.result("tailscale ping")?.tailscalePing
        #expect(ping?.pongs == 3 && ping?.path == "direct" && ping?.via == "203.0.113.7:41641")
        // Progress went to standard error, one line per step.
        #expect(output.contains("✓ lease: 192.168.127.3 for 5a:94:ef:e4:0c:42"))
        // Nothing is left: no namespace, no process in it, no socket, no state.
        #expect(!(try shell("ip netns exec \(setup.host.name) ip netns list")).contains("sovnet-once"))
        let left = try FileManager.default.contentsOfDirectory(atPath: setup.work + "/run")
        #expect(!left.contains { $0.hasSuffix(".sock") || $0 == "state.json" }, "\(left)")
    }

    @Test func failuresAreNamedWithTheirReasons() throws {
        let setup = try Setup("fails", status: "status-needs-login.json")
        let config = try setup.configuration(ports: [8080, 9])
        let up = try Spawned(setup.sovnet("up --config \(config) --once"), log: setup.work + "/up.log")
        #expect(up.wait(90) == 1, "\(up.output)")
        let output = up.output
        func row(_ name: String) -> [String] {
            output.split(whereSeparator: \.isNewline).first { $0.hasPrefix(name + "  ") }?
                .split(separator: " ", maxSplits: name.split(separator: " ").count + 1).map(String.init) ?? []
        }
        #expect(row("tcp 8080").contains("PASS"), "\(output)")
        #expect(row("tcp 9").last?.trimmingCharacters(in: .whitespaces) == "refused: nothing listens on 192.168.127.3:9", "\(output)")
        #expect(row("tailscale").contains("FAIL"), "\(output)")
        #expect(output.contains("backend NeedsLogin, offline, "), "\(output)")
        #expect(output.contains("health: You are logged out."), "\(output)")
        #expect(output.contains("the guest has no tailnet IPv4 address to ping"), "\(output)")
        #expect(output.contains("FAILED: tcp 9: refused"), "\(output)")

        // A socket something listens on stops the launch, naming the owner.
        let squatter = try Spawned("ip netns exec \(setup.host.name) python3 -c 'import socket, time; s = socket.socket(socket.AF_UNIX); "
                                   + "s.bind(\"\(setup.work)/run/network.sock\"); s.listen(); print(\"ready\", flush=True); time.sleep(60)'",
                                   log: setup.work + "/squatter.log")
        defer { squatter.stop() }
        #expect(waitUntil(10) { squatter.output.contains("ready") })
        let blocked = try Spawned(setup.sovnet("up --config \(config) --once"), log: setup.work + "/blocked.log")
        #expect(blocked.wait(30) == 1)
        #expect(blocked.output.contains("network.sock is in use by python3 (pid \(squatter.pid))"), "\(blocked.output)")
    }

    @Test func upServesUntilDownAndStatusAndCheckSeeIt() throws {
        let setup = try Setup("serve")
        let config = try setup.configuration(ports: [8080])
        let up = try Spawned(setup.sovnet("up --config \(config)"), log: setup.work + "/up.log")
        defer { up.stop() }
        #expect(waitUntil(60) { up.output.contains("serving; stop with") }, "\(up.output)")
        let status = try shell(setup.sovnet("status --name serve"))
        #expect(status.contains("serve: netns guest, up (sovnet up pid "), "\(status)")
        #expect(status.contains("leases: 192.168.127.3 5a:94:ef:e4:0c:42"), "\(status)")
        let check = try shell(setup.sovnet("check --name serve"))
        #expect(check.contains("every check passed"), "\(check)")
        // The guest is a real namespace: its address and its service are there.
        // (`ip netns exec` gives the launcher its own mount namespace, where the
        // guest's /run/netns entry lives: the guest is entered by its PID.)
        let state = try shell(setup.sovnet("status --name serve --json"))
        let guestPID = try #require(state.split(separator: "\n").first { $0.contains("\"guestPID\"") }?
            .split(separator: ":").last?.trimmingCharacters(in: CharacterSet(charactersIn: " ,")))
        let inside = try shell("nsenter --net=/proc/\(guestPID)/ns/net ip -4 -br addr show tap0")
        #expect(inside.contains("192.168.127.3/24"), "\(inside)")
        let down = try shell(setup.sovnet("down --name serve"), seconds: 90)
        #expect(down.contains("stopped serve"), "\(down)\n\(up.output)")
        #expect(up.wait(30) == 0, "\(up.output)")
        #expect(up.output.contains("signal 15: stopping"))
        #expect(!(try shell("ip netns exec \(setup.host.name) ip netns list")).contains("sovnet-serve"))
        #expect(throws: ShellError.self) { try shell(setup.sovnet("status --name serve")) }
    }

    /// No launch loses a guest: a second `up` is refused without touching the
    /// running one's state; a launcher killed with SIGKILL leaves its guest
    /// running, which `status` reports as down (exit 1, no stale checks), a
    /// new `up` refuses to clobber, and `down` stops by PID; then the name is
    /// free again.
    @Test func noLaunchLosesAGuest() throws {
        let setup = try Setup("keep")
        let config = try setup.configuration(ports: [8080])
        let up = try Spawned(setup.sovnet("up --config \(config)"), log: setup.work + "/up.log")
        defer { up.stop() }
        #expect(waitUntil(60) { up.output.contains("serving; stop with") }, "\(up.output)")
        let second = try Spawned(setup.sovnet("up --config \(config) --once"), log: setup.work + "/second.log")
        #expect(second.wait(60) == 1, "\(second.output)")
        #expect(second.output.contains("keep is already up (sovnet up pid \(up.pid))"), "\(second.output)")
        #expect(try shell(setup.sovnet("status --name keep")).contains("keep: netns guest, up (sovnet up pid \(up.pid))"))

        // The launcher dies without cleaning up; its guest runs on.
        up.stop(SIGKILL)
        let state = try String(contentsOfFile: setup.work + "/run/state.json", encoding: .utf8)
        let guestPID = try #require(state.split(separator: "\n").first { $0.contains("\"guestPID\"") }?
            .split(separator: ":").last.flatMap { Int32($0.trimmingCharacters(in: CharacterSet(charactersIn: " ,"))) })
        #expect(Self.runs(guestPID), "the guest's sovnet forward outlives its launcher")
        do {
            let status = try shell(setup.sovnet("status --name keep"))
            Issue.record("status of a guest whose launcher died exited 0: \(status)")
        } catch let failure as ShellError {
            #expect(failure.status == 1)
            #expect(failure.output.contains("keep: netns guest, DOWN (its launcher is gone); processes "), "\(failure.output)")
            #expect(failure.output.contains("\(guestPID)") && !failure.output.contains("every check passed"), "\(failure.output)")
        }
        let third = try Spawned(setup.sovnet("up --config \(config) --once"), log: setup.work + "/third.log")
        #expect(third.wait(60) == 1, "\(third.output)")
        #expect(third.output.contains("keep's last launch (sovnet up pid \(up.pid)) died and left processes "), "\(third.output)")
        #expect(try String(contentsOfFile: setup.work + "/run/state.json", encoding: .utf8) == state,
                "a refused launch leaves the state as it was")

        let down = try shell(setup.sovnet("down --name keep"), seconds: 60)
        #expect(down.contains("stopped processes ") && down.contains("cleaned up after keep, whose launcher (pid \(up.pid)) had died"),
                "\(down)")
        let pids = down.split(separator: "\n").first { $0.hasPrefix("stopped processes ") }?
            .replacingOccurrences(of: "stopped processes ", with: "").replacingOccurrences(of: " left by a dead launcher", with: "")
            .split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) } ?? []
        #expect(pids.contains(guestPID) && pids.count >= 2, "the forwarder and the service: \(pids)")
        #expect(waitUntil(5) { !pids.contains(where: Self.runs) }, "still running: \(pids.filter(Self.runs))")
        #expect(throws: ShellError.self) { try shell(setup.sovnet("status --name keep")) }

        let again = try Spawned(setup.sovnet("up --config \(config) --once"), log: setup.work + "/again.log")
        #expect(again.wait(90) == 0, "the name is free again: \(again.output)")
    }

    /// Whether process `pid` runs (exists and is not a zombie).
    static func runs(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }

    /// With `proxy:` the launcher uses a `sovnet proxy` already running (its
    /// API and its `-listen` socket) and leaves it running afterwards.
    @Test func aRunningProxyIsUsedAndLeftRunning() throws {
        let setup = try Setup("existing")
        let proxy = try Spawned("ip netns exec \(setup.host.name) \(CommandLineTests.binary.path) proxy -ssh-port -1 "
                                + "-listen unix://\(setup.work)/vm.sock --services unix://\(setup.work)/api.sock",
                                log: setup.work + "/proxy.log")
        defer { proxy.stop() }
        #expect(waitUntil(10) { FileManager.default.fileExists(atPath: setup.work + "/api.sock") }, "\(proxy.output)")
        let config = try setup.configuration(ports: [8080], extra: """
            proxy:
              api: unix://\(setup.work)/api.sock
              listen: unix://\(setup.work)/vm.sock

            """)
        let up = try Spawned(setup.sovnet("up --config \(config) --once"), log: setup.work + "/up.log")
        #expect(up.wait(90) == 0, "\(up.output)\n\(proxy.output)")
        #expect(up.output.contains("✓ network: using the running proxy at unix://\(setup.work)/api.sock"), "\(up.output)")
        #expect(up.output.contains("✓ tcp 192.168.127.3:8080: open"), "\(up.output)")
        #expect(proxy.isRunning, "the running proxy is not the launcher's to stop")
        #expect(proxy.output.contains("guest on port 1 disconnected"), "the guest left when the launch ended: \(proxy.output)")
    }
}
