import Foundation
import Testing

/// `sovnet guest install` and `sovnet init` without a VM: a root file
/// system made of busybox and the installed sovnet, run as PID 1 of its own
/// PID, mount, UTS and network namespaces (`unshare`, `chroot`), with
/// `sovnet proxy` outside reached through a socket inside the tree.
@Suite(.serialized)
final class GuestTests {
    let work = uniqueTemporaryPath("guest")
    var root: String { work + "/root" }
    var processes: [Spawned] = []

    init() throws {
        try FileManager.default.createDirectory(atPath: work + "/root/bin", withIntermediateDirectories: true)
    }

    deinit {
        processes.reversed().forEach { $0.stop() }
        try? FileManager.default.removeItem(atPath: work)
    }

    @discardableResult
    func install(_ arguments: String) throws -> String {
        try shell("\(CommandLineTests.binary.path) guest install --rootfs \(root) \(arguments)")
    }

    func contents(_ path: String) -> String {
        (try? String(contentsOfFile: root + path, encoding: .utf8)) ?? ""
    }

    @Test func installWritesTheBinaryWhatItLinksAndTheInitFiles() throws {
        let output = try install("--url serial:///dev/hvc1")
        #expect(output.contains("kernel parameters: console=hvc0 init=/sbin/sovnet-init"), "\(output)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/sbin/sovnet-init") == "/usr/bin/sovnet")
        #expect(FileManager.default.isExecutableFile(atPath: root + "/usr/bin/sovnet"))
        #expect(contents("/etc/sovnet/forward") == "-url serial:///dev/hvc1\n")
        #expect(contents("/etc/sovnet/modules").contains("\ntun\n"))
        #expect(contents("/etc/sovnet/services").hasPrefix("# Services sovnet-init starts"))
        // The program installed is sovnet-guest, stripped: the guest's commands alone.
        let installed = root + "/usr/bin/sovnet"
        #expect(output.contains("installed stripped; \(GuestBinaryTests.binary) keeps the symbols"), "\(output)")
        #expect(try shell("readelf -S \(installed) | grep -c -E 'symtab|debug_info' || true")
            .trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(try !shell("\(installed) --help").contains("proxy"))
        // Every library it needs is in the tree, under the name the loader
        // asks for.
        let needed = try shell("ldd \(installed)").split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count >= 3 && words[1] == "=>" ? String(words[0].trimmingCharacters(in: .whitespaces)) : nil
        }
        #expect(!needed.isEmpty)
        let tree = try shell("find \(root) -name '*.so*'")
        for library in needed {
            #expect(tree.contains("/\(library)\n"), "\(library) copied under its SONAME")
        }
        // A second install keeps what the user edited.
        try "-url vsock://2:1024/connect -mtu 4000\n".write(toFile: root + "/etc/sovnet/forward", atomically: true, encoding: .utf8)
        try "tailscaled\n".write(toFile: root + "/etc/sovnet/services", atomically: true, encoding: .utf8)
        let again = try install("")
        #expect(contents("/etc/sovnet/forward") == "-url vsock://2:1024/connect -mtu 4000\n")
        #expect(contents("/etc/sovnet/services") == "tailscaled\n")
        #expect(again.contains("kept the root file system's"), "its libraries are there already: \(again)")
        // Another program, with its symbols, when asked.
        try install("--binary \(CommandLineTests.binary.path) --no-strip")
        #expect(try shell("\(installed) --help").contains("proxy"))
        #expect(try shell("readelf -S \(installed) | grep -c symtab").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
    }

    @Test(.enabled(if: geteuid() == 0, "needs root for chroot and unshare"))
    func theInstalledBinaryRunsInTheTree() throws {
        try install("")
        try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
        let version = try shell("unshare --mount --fork sh -c 'mount -t proc proc \(root)/proc && chroot \(root) /usr/bin/sovnet --version'")
        #expect(version.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
        // Without /proc, Swift cannot read its command line: a clear error, not a help page.
        let status = try Spawned("chroot \(root) /usr/bin/sovnet --version", log: work + "/noproc.log")
        #expect(status.wait(10) == 2)
        #expect(status.output.contains("/proc is not mounted"), "\(status.output)")
    }

    @Test func openrcAndSystemdServicesForImagesThatKeepTheirInit() throws {
        try install("--init openrc --forward-args '-url serial:///dev/hvc1 -debug'")
        let script = contents("/etc/init.d/sovnet-forward")
        #expect(script.hasPrefix("#!/sbin/openrc-run\n"))
        #expect(script.contains("command=/usr/bin/sovnet\ncommand_args=\"forward -url serial:///dev/hvc1 -debug\""), "\(script)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/etc/runlevels/default/sovnet-forward")
                == "/etc/init.d/sovnet-forward")
        #expect(!FileManager.default.fileExists(atPath: root + "/sbin/sovnet-init"))
        try install("--init systemd --url 'unix:///run/my vm.sock'")
        let unit = contents("/etc/systemd/system/sovnet-forward.service")
        #expect(unit.contains("ExecStart=/usr/bin/sovnet forward -url 'unix:///run/my vm.sock'\nRestart=always"), "\(unit)")
        #expect(try FileManager.default.destinationOfSymbolicLink(
            atPath: root + "/etc/systemd/system/multi-user.target.wants/sovnet-forward.service")
                == "/etc/systemd/system/sovnet-forward.service")
    }

    @Test func badRootsAndFlagsAreRefused() throws {
        let missing = try Spawned("\(CommandLineTests.binary.path) guest install --rootfs \(work)/nothing", log: work + "/bad1.log")
        #expect(missing.wait(10) == 1, "a root file system that is not there is a failure, not a usage error")
        #expect(missing.output.contains("is not a directory") && !missing.output.contains("Usage"))
        let kind = try Spawned("\(CommandLineTests.binary.path) guest install --rootfs \(root) --init runit", log: work + "/bad2.log")
        #expect(kind.wait(10) == 64)
        let notPID1 = try Spawned("\(CommandLineTests.binary.path) init", log: work + "/bad3.log")
        #expect(notPID1.wait(10) == 1)
        #expect(notPID1.output.contains("runs as PID 1 only"), "\(notPID1.output)")
    }

    /// The init in a container: PID 1 of new namespaces, chrooted into the
    /// tree. It mounts, sets the host name, starts sovnet forward (to a proxy
    /// outside, through a socket in the tree), then the services once the
    /// lease gave a default route; restarts a service that exits, reaps the
    /// orphans it leaves, and on SIGTERM stops the services in reverse order,
    /// the forwarder last (which releases its lease), then powers off.
    @Test(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"))
    func initRunsForwarderAndServicesAndShutsDownInOrder() throws {
        try runInit(install: "--url unix:///host/network.sock")
    }

    /// The same with the Embedded build of the guest program (EmbeddedGuestTests).
    @Test(.enabled(if: canMakeNamespaces && EmbeddedGuestTests.built, "needs namespaces and scripts/build-guest-embedded"))
    func theEmbeddedBuildRunsAsInitToo() throws {
        try runInit(install: "--url unix:///host/network.sock --binary \(EmbeddedGuestTests.binary)")
        #expect(try shell("ldd \(root)/usr/bin/sovnet 2>&1 || true").contains("not a dynamic executable"))
        #expect(!FileManager.default.fileExists(atPath: root + "/lib64"), "a static binary needs no loader copied")
    }

    /// Installs with `install`, boots the tree with sovnet-init as PID 1 and
    /// checks what it does up to its power-off.
    private func runInit(install installArguments: String) throws {
        try shell("cp /bin/busybox \(root)/bin/ && for tool in sh nc sleep cat echo grep; do ln -sf busybox \(root)/bin/$tool; done")
        try FileManager.default.createDirectory(atPath: root + "/host", withIntermediateDirectories: true)
        try install(installArguments)
        try "probe-guest\n".write(toFile: root + "/etc/hostname", atomically: true, encoding: .utf8)
        try """
            nc -ll -p 8080 -e /bin/cat
            sh -c 'echo "probe: $(cat /proc/sys/kernel/hostname) PATH=$PATH"; grep -E " /(proc|sys|dev|dev/pts|dev/shm|run) " /proc/mounts | while read -r what where type rest; do echo "probe: mount $where $type"; done; sleep 0.2 & exit 0'
            """.write(toFile: root + "/etc/sovnet/services", atomically: true, encoding: .utf8)
        let host = try TestNamespace("svt-ghost")
        defer { host.close() }
        let proxy = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy -listen unix://\(root)/host/network.sock "
                                + "--dns-upstream 127.0.0.1:5999 --forward tcp:127.0.0.1:18080=192.168.127.2:8080 "
                                + "--services unix://\(root)/host/api.sock", log: work + "/proxy.log")
        processes.append(proxy)
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: root + "/host/network.sock") }, "\(proxy.output)")
        let container = try Spawned("unshare --pid --fork --mount --uts --net --propagation private chroot \(root) /sbin/sovnet-init",
                                    log: work + "/init.log")
        processes.append(container)
        #expect(waitUntil(15) { container.output.contains("started service 2 (sh)") }, "\(container.output)")
        #expect(waitUntil(10) { container.output.components(separatedBy: "started service 2 (sh)").count >= 3 },
                "the probe exits and is started again, with backoff: \(container.output)")
        let echoed = try host.run("echo through-the-guest | timeout 5 socat -t 2 - TCP:127.0.0.1:18080")
        #expect(echoed.contains("through-the-guest"), "a service reached through the proxy's port forward")
        let leases = try shell("curl -s --max-time 5 --unix-socket \(root)/host/api.sock http://sovnet/services/dhcp/leases")
        #expect(leases.contains("192.168.127.2"), "\(leases)")
        let initPID = try #require(Int32(try shell("pgrep -P \(container.pid)").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(initPID, SIGTERM)
        #expect(container.wait(30) != nil, "\(container.output)")
        let log = container.output
        for line in ["probe: probe-guest PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "probe: mount /proc proc", "probe: mount /sys sysfs", "probe: mount /dev devtmpfs",
                     "probe: mount /dev/pts devpts", "probe: mount /dev/shm tmpfs", "probe: mount /run tmpfs",
                     "lease obtained: 192.168.127.2/24", "network up: starting services"] {
            #expect(log.contains(line), "\(line)\n\(log)")
        }
        // Shutdown: the last service first, the forwarder last, its lease released.
        let order = ["powering off", "stopping service 1 (nc)", "stopping sovnet forward", "released 192.168.127.2",
                     "powering off now"].map { log.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && zip(order, order.dropFirst()).allSatisfy { $0! < $1! }, "\(log)")
        let reaped = log.components(separatedBy: "reaped ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(reaped >= 2, "the probe's background sleeps were reaped: \(log)")
        #expect(try shell("curl -s --max-time 5 --unix-socket \(root)/host/api.sock http://sovnet/services/dhcp/leases")
                .trimmingCharacters(in: .whitespacesAndNewlines) == "{}", "the lease was released")
    }
}
