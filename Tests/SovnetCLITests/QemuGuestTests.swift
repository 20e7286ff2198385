import Foundation
import Testing

/// A real VM: QEMU (TCG) boots the Debian kernel with a busybox initramfs
/// (`scripts/guest-image`), its virtio-net connected with `-netdev stream`
/// to `sovnet proxy -listen-qemu`. The guest's init takes a lease with
/// udhcpc, pings the gateway, resolves a local name, fetches a page and
/// moves 4 MB down and 3 MB up (checked by SHA-256), asks a DNS server over
/// UDP and pings, all through the NAT to the proxy side's loopback, takes
/// an IPv6 address by SLAAC and pings the gateway and the host's ::1 over
/// IPv6, then powers off.
@Suite(.serialized, .enabled(if: canMakeNamespaces && FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64"),
                "needs root and qemu-system-x86_64 (scripts/test installs it)"))
struct QemuGuestTests {
    static let root = CommandLineTests.root.path

    @Test func qemuGuestGetsLeasePingDNSAndNAT() throws {
        try shell("\(Self.root)/scripts/guest-image \(Self.root)/.build-guest", seconds: 600)
        let work = NSTemporaryDirectory() + "sovnet-qemu-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let host = try TestNamespace("svt-qhost")
        defer { host.close() }
        try FileManager.default.createDirectory(atPath: work + "/www", withIntermediateDirectories: true)
        try "through-the-nat\n".write(toFile: work + "/www/probe", atomically: true, encoding: .utf8)
        let web = try Spawned("ip netns exec \(host.name) python3 -m http.server 8080 --bind 127.0.0.1 --directory \(work)/www",
                              log: work + "/web.log")
        defer { web.stop() }
        let peers = NATTests.peers
        let source = try Spawned("ip netns exec \(host.name) python3 -u \(peers) source-server 127.0.0.1 7003 --size 4000000",
                                 log: work + "/source.log")
        defer { source.stop() }
        let sink = try Spawned("ip netns exec \(host.name) python3 -u \(peers) sink-server 127.0.0.1 7002", log: work + "/sink.log")
        defer { sink.stop() }
        let udp = try Spawned("ip netns exec \(host.name) python3 -u \(peers) dns-server 127.0.0.1 53 --text 198.51.100.99",
                              log: work + "/udp.log")
        defer { udp.stop() }
        try host.run("sysctl -q -w net.ipv4.ping_group_range='0 2147483647'")
        let proxy = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) proxy "
                                + "-listen-qemu unix://\(work)/qemu.sock --exit-on-disconnect "
                                + "--dns-upstream 127.0.0.1:5999 -pcap \(work)/switch.pcap", log: work + "/proxy.log")
        defer { proxy.stop() }
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/qemu.sock") }, "\(proxy.output)")
        let qemu = try Spawned(
            "qemu-system-x86_64 -M q35 -m 256 -nographic -no-reboot -kernel \(Self.root)/.build-guest/vmlinuz "
                + "-initrd \(Self.root)/.build-guest/initrd.gz -append 'console=ttyS0 quiet panic=-1' "
                + "-netdev stream,id=n0,server=off,addr.type=unix,addr.path=\(work)/qemu.sock "
                + "-device virtio-net-pci,netdev=n0,mac=5a:94:ef:e4:0c:ee",
            log: work + "/console.log")
        defer { qemu.stop() }
        let finished = waitUntil(120) { qemu.output.contains("SOVNET-GUEST done") }
        #expect(finished, "console: \(qemu.output.suffix(2000))\nproxy: \(proxy.output)")
        let console = qemu.output
        #expect(console.contains("SOVNET-GUEST lease 192.168.127.2/24 router 192.168.127.1 dns 192.168.127.1 mtu 1500"))
        #expect(console.contains("SOVNET-GUEST ping ok"))
        #expect(console.contains("SOVNET-GUEST dns 192.168.127.1"))
        let expected = try shell("python3 \(peers) digest 0 0 --size 4000000").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(console.contains("SOVNET-GUEST down \(expected) 4000000"), "4 MB from the host, whole")
        // The serial console ends lines with CRLF, one Character to Swift.
        let uploaded = console.split(whereSeparator: \.isNewline).first { $0.hasPrefix("SOVNET-GUEST up ") }?.split(separator: " ").last
        #expect(uploaded != nil && console.contains("SOVNET-GUEST sink 3000000 \(uploaded ?? "")"), "3 MB to the host, whole")
        #expect(console.contains("SOVNET-GUEST udp 198.51.100.99"), "a DNS query and answer through the NAT to 127.0.0.1:53")
        #expect(console.contains("SOVNET-GUEST ping-host ok"), "echo to the host alias through a ping socket")
        #expect(console.contains("SOVNET-GUEST ipv6 fd000000000000005894effffee40cee"), "the guest kernel's SLAAC address")
        #expect(console.contains("SOVNET-GUEST ping6 ok") && console.contains("SOVNET-GUEST ping6-host ok"),
                "ICMPv6 echo to the gateway, and through the NAT to the host's ::1")
        #expect(console.contains("SOVNET-GUEST http through-the-nat"),
                "TCP through the NAT to 127.0.0.1 via the host alias: \((try? shell("tshark -r \(work)/switch.pcap -Y tcp")) ?? "")\n\(web.output)")
        // The guest powered off: the single-guest listener's proxy exits, as asked.
        #expect(proxy.wait(30) == 0, "\(proxy.output)")
        let frames = try shell("tshark -r \(work)/switch.pcap -Y 'dhcp.option.dhcp == 5 or dns.flags.response == 1' "
                               + "-T fields -e frame.protocols")
        #expect(frames.contains("dhcp") && frames.contains("dns"))
    }

    /// `sovnet up --guest qemu` as a user runs it: the same VM image in its
    /// serve mode (`sovnet.serve`: the console on hvc0 once virtio_console is
    /// loaded, a lease, a TCP echo on 8080), launched, checked and stopped.
    /// TCG: this machine's /dev/kvm opens but its guests hang.
    @Test func sovnetUpLaunchesAndChecksAQemuGuest() throws {
        try shell("\(Self.root)/scripts/guest-image \(Self.root)/.build-guest", seconds: 600)
        let work = NSTemporaryDirectory() + "sovnet-qemu-up-\(getpid())"
        try FileManager.default.createDirectory(atPath: work + "/run", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let host = try TestNamespace("svt-qup")
        defer { host.close() }
        try """
            name: qlab
            guest:
              kind: qemu
              kernel: \(Self.root)/.build-guest/vmlinuz
              initrd: \(Self.root)/.build-guest/initrd.gz
              kernel-config: \(Self.root)/.build-guest/config
              params: sovnet.serve panic=-1
              accel: tcg
              stop-timeout: 2
            checks:
              lease-timeout: 120
              tcp: [8080]
            """.write(toFile: work + "/sovnet.yaml", atomically: true, encoding: .utf8)
        let up = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) up --config \(work)/sovnet.yaml "
                             + "--once --run-dir \(work)/run", log: work + "/up.log")
        let status = up.wait(240)
        let console = (try? String(contentsOfFile: work + "/run/console.log", encoding: .utf8)) ?? ""
        #expect(status == 0, "\(up.output)\nconsole:\n\(console.suffix(2000))")
        #expect(up.output.contains("accelerator tcg"))
        #expect(up.output.contains("CONFIG_VIRTIO_CONSOLE=m: the initramfs must load it"), "Debian's console is a module")
        #expect(up.output.contains("✓ lease: 192.168.127.2 for 5a:94:ef:e4:0c:ee"), "\(up.output)")
        #expect(up.output.contains("✓ tcp 192.168.127.2:8080: open"), "\(up.output)")
        #expect(up.output.contains(" received, "), "\(up.output)")
        // The console came through the virtio console (hvc0) into the run directory.
        #expect(console.contains("SOVNET-GUEST serving"), "\(console.suffix(2000))")
        // QEMU is gone with the launcher.
        #expect(!(try shell("pgrep -f '[q]emu-system-x86_64.*\(work)' || true")).contains(where: \.isNumber))
    }

    /// A guest that runs sovnet the way the field deployment should: a root
    /// file system made here (busybox, the Debian kernel's modules, and
    /// sovnet put in with `sovnet guest install`), booted under TCG with
    /// `rdinit=/sbin/sovnet-init` and launched by `sovnet up --guest qemu
    /// --transport serial`. The init loads the virtio console, tun and the
    /// power button, starts `sovnet forward -url serial:///dev/hvc1`, which
    /// reaches the proxy over the second virtio console port and takes its
    /// lease; then the services of /etc/sovnet/services: a TCP echo on 8080,
    /// which `sovnet up` checks, and a probe that prints the mounts, leaves
    /// an orphan behind and then serves 8081, which `sovnet up` checks too,
    /// so that it stops the guest only once the probe has printed. `sovnet up` stops the guest with its power
    /// button (QMP system_powerdown): the init stops the services in reverse
    /// order, the forwarder releases its lease, and the VM powers off.
    /// The program is the Embedded build, static with musl, when it was built
    /// (scripts/test builds it): what the release's `guest install` puts in.
    @Test func sovnetInitGuestOverTheVirtioConsole() throws {
        try shell("\(Self.root)/scripts/guest-image \(Self.root)/.build-guest", seconds: 600)
        let work = NSTemporaryDirectory() + "sovnet-qemu-init-\(getpid())"
        let root = work + "/root"
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work + "/run", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try shell("cp /bin/busybox \(root)/bin/ && for tool in sh nc sleep cat echo grep; do ln -s busybox \(root)/bin/$tool; done "
                  + "&& cp -a \(Self.root)/.build-guest/modules/lib \(root)/")
        let program = EmbeddedGuestTests.built ? " --binary \(EmbeddedGuestTests.binary)" : ""
        let installed = try shell("\(CommandLineTests.binary.path) guest install --rootfs \(root) --url serial:///dev/hvc1\(program)")
        #expect(installed.contains("init=/sbin/sovnet-init"))
        try "vm-guest\n".write(toFile: root + "/etc/hostname", atomically: true, encoding: .utf8)
        try """
            nc -ll -p 8080 -e /bin/cat
            sh -c 'echo "SOVNET-INIT $(cat /proc/sys/kernel/hostname) PATH=$PATH"; grep -E " /(proc|sys|dev|dev/pts|dev/shm|run) " /proc/mounts | while read -r what where type rest; do echo "SOVNET-INIT mount $where $type"; done; (sleep 0.5 &); exec nc -ll -p 8081 -e /bin/cat'
            """.write(toFile: root + "/etc/sovnet/services", atomically: true, encoding: .utf8)
        try shell("cd \(root) && find . | cpio -o -H newc --quiet > \(work)/initrd.cpio", seconds: 120)
        try """
            name: initlab
            guest:
              kind: qemu
              kernel: \(Self.root)/.build-guest/vmlinuz
              initrd: \(work)/initrd.cpio
              kernel-config: \(Self.root)/.build-guest/config
              params: rdinit=/sbin/sovnet-init panic=-1
              transport: serial
              memory: 768
              accel: tcg
              stop-timeout: 60
            checks:
              lease-timeout: 150
              tcp: [8080, 8081]
            """.write(toFile: work + "/sovnet.yaml", atomically: true, encoding: .utf8)
        let host = try TestNamespace("svt-qinit")
        defer { host.close() }
        let up = try Spawned("ip netns exec \(host.name) \(CommandLineTests.binary.path) up --config \(work)/sovnet.yaml "
                             + "--once --run-dir \(work)/run --pcap \(work)/net.pcap", log: work + "/up.log")
        let status = up.wait(400)
        let console = (try? String(contentsOfFile: work + "/run/console.log", encoding: .utf8)) ?? ""
        let boot = (try? String(contentsOfFile: work + "/run/boot.log", encoding: .utf8)) ?? ""
        #expect(status == 0, "\(up.output)\nconsole:\n\(console.suffix(4000))\nboot.log:\n\(boot.suffix(4000))")
        // The kernel's messages from the first, before virtio_console is loaded, on ttyS0.
        #expect(boot.contains("Linux version") && boot.contains("Run /sbin/sovnet-init as init process"), "\(boot.suffix(4000))")
        #expect(up.output.contains("proxy listening on unix://\(work)/run/serial.sock (vm over a serial line)"), "\(up.output)")
        #expect(up.output.contains("✓ lease: 192.168.127.2 for 5a:94:ef:e4:0c:ee"), "\(up.output)")
        #expect(up.output.contains("✓ tcp 192.168.127.2:8080: open"), "\(up.output)")
        #expect(up.output.contains(" received, "), "\(up.output)")
        // The init, on the hvc0 console: boot, the probe's view, then the shutdown in order.
        for line in ["sovnet-init 0.1.0 starting", "virtio_console", "host name vm-guest",
                     "connected to serial:///dev/hvc1 (vm framing)", "serial line synchronised with host session",
                     "lease obtained: 192.168.127.2/24", "network up: starting services",
                     "SOVNET-INIT vm-guest PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "SOVNET-INIT mount /proc proc", "SOVNET-INIT mount /sys sysfs", "SOVNET-INIT mount /dev devtmpfs",
                     "SOVNET-INIT mount /dev/pts devpts", "SOVNET-INIT mount /dev/shm tmpfs", "SOVNET-INIT mount /run tmpfs"] {
            #expect(console.contains(line), "\(line)\nconsole:\n\(console.suffix(4000))")
        }
        let order = ["power button pressed", "stopping service 2 (sh)", "stopping service 1 (nc)", "stopping sovnet forward",
                     "released 192.168.127.2", "powering off now"].map { console.range(of: $0)?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && zip(order, order.dropFirst()).allSatisfy { $0! < $1! },
                "console:\n\(console.suffix(4000))")
        let reaped = console.components(separatedBy: "reaped ").last.flatMap { Int($0.prefix { $0.isNumber }) } ?? 0
        #expect(reaped >= 1, "the probe's orphan was reaped")
        let release = try shell("tshark -r \(work)/net.pcap -Y 'dhcp.option.dhcp == 7' -T fields -e ip.src")
        #expect(release.contains("192.168.127.2"), "the DHCPRELEASE reached the proxy")
        #expect(!(try shell("pgrep -f '[q]emu-system-x86_64.*\(work)' || true")).contains(where: \.isNumber))
    }
}
