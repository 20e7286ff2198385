import Foundation
import Testing
@testable import SovnetDrivers

/// The parts of `sovnet up` that cannot run here for real, tested against
/// what they must produce: crosvm's and QEMU's command lines (golden
/// files), crosvm's exit statuses with a stand-in that exits with each,
/// the kernel configuration check on Debian's kernel and on images built
/// here with an embedded configuration, and the configuration file's errors.
@Suite struct LaunchPartsTests {
    static let golden = CommandLineTests.root.path + "/Tests/SovnetCLITests/Golden"

    @Test func crosvmCommandLineMatchesGolden() throws {
        let output = try shell("\(CommandLineTests.binary.path) up --guest crosvm --kernel /data/vm/Image "
                               + "--disk /data/vm/rootfs.img --params 'init=/sbin/sovnet-init rw' --name phone "
                               + "--run-dir /run/sovnet/phone --dry-run")
        #expect(output == (try String(contentsOfFile: Self.golden + "/crosvm-command.txt", encoding: .utf8)))
    }

    /// Without vsock: the network on a second virtio console port that crosvm connects to the proxy's socket.
    @Test func crosvmSerialTransportCommandLineMatchesGolden() throws {
        let output = try shell("\(CommandLineTests.binary.path) up --guest crosvm --kernel /data/vm/Image "
                               + "--disk /data/vm/rootfs.img --params 'init=/sbin/sovnet-init rw' --name phone "
                               + "--transport serial --run-dir /run/sovnet/phone --dry-run")
        #expect(output == (try String(contentsOfFile: Self.golden + "/crosvm-serial-command.txt", encoding: .utf8)))
    }

    @Test func qemuCommandLineMatchesGolden() throws {
        let config = NSTemporaryDirectory() + "sovnet-qemu-\(getpid()).yaml"
        defer { unlink(config) }
        try """
            name: lab
            guest:
              kind: qemu
              kernel: /srv/vm/vmlinuz
              initrd: /srv/vm/initrd.gz
              memory: 512
              accel: tcg
              params: init=/sbin/sovnet-init
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let output = try shell("\(CommandLineTests.binary.path) up --config \(config) --run-dir /run/sovnet/lab --dry-run")
        #expect(output == (try String(contentsOfFile: Self.golden + "/qemu-command.txt", encoding: .utf8)))
        let serial = try shell("\(CommandLineTests.binary.path) up --config \(config) --run-dir /run/sovnet/lab "
                               + "--transport serial --dry-run")
        #expect(serial == (try String(contentsOfFile: Self.golden + "/qemu-serial-command.txt", encoding: .utf8)))
    }

    /// A stand-in crosvm prints a console line and exits with each of crosvm's
    /// `--extended-status` codes; the guest's end is explained, and the
    /// console tail holds what it printed.
    @Test(arguments: [(0, true, "powered off"), (32, true, "reset"), (33, false, "crashed"), (34, false, "panicked"),
                      (35, false, "rejected its arguments"), (36, false, "watchdog")])
    func crosvmExitStatusesAreExplained(code: Int32, ok: Bool, words: String) throws {
        let work = NSTemporaryDirectory() + "sovnet-crosvm-\(getpid())-\(code)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let standIn = work + "/crosvm"
        try "#!/bin/sh\necho \"[    0.9] guest console line $*\"\nexit \(code)\n".write(toFile: standIn, atomically: true, encoding: .utf8)
        chmod(standIn, 0o755)
        var configuration = LaunchConfiguration()
        configuration.guest.kind = .crosvm
        configuration.guest.binary = standIn
        configuration.guest.kernel = "/k"
        configuration.guest.disk = "/d"
        let guest = HypervisorGuest(configuration: configuration, runDirectory: work,
                                    arguments: CrosvmCommand.arguments(configuration, runDirectory: work))
        try guest.start()
        let status = try #require(guest.process?.wait(seconds: 10))
        #expect(status == code)
        let ended = guest.ended(status: status)
        #expect(ended.ok == ok && ended.message.contains(words), "\(ended.message)")
        #expect(guest.consoleTail(lines: 5).contains("guest console line --extended-status run --disable-sandbox"))
    }

    /// Stopping a crosvm guest asks it first: `crosvm powerbtn` on the control
    /// socket, which the stand-in turns into a clean power-off of its `run`.
    @Test func crosvmIsStoppedWithThePowerButton() throws {
        let work = NSTemporaryDirectory() + "sovnet-crosvm-stop-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let standIn = work + "/crosvm"
        try """
            #!/bin/sh
            echo "crosvm $*" >> \(work)/calls
            case "$1" in
                --extended-status) echo $$ > \(work)/run.pid; trap 'echo powered off; exit 0' USR1
                                   i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; exit 36 ;;
                powerbtn) kill -USR1 "$(cat \(work)/run.pid)" ;;
                stop) kill -KILL "$(cat \(work)/run.pid)" ;;
            esac
            """.write(toFile: standIn, atomically: true, encoding: .utf8)
        chmod(standIn, 0o755)
        var configuration = LaunchConfiguration()
        configuration.guest.kind = .crosvm
        configuration.guest.binary = standIn
        configuration.guest.kernel = "/k"
        configuration.guest.disk = "/d"
        let guest = HypervisorGuest(configuration: configuration, runDirectory: work,
                                    arguments: CrosvmCommand.arguments(configuration, runDirectory: work))
        try guest.start()
        #expect(waitUntil(5) { FileManager.default.fileExists(atPath: work + "/run.pid") })
        guest.stop()
        #expect(guest.process?.exitStatus == 0)
        let calls = try String(contentsOfFile: work + "/calls", encoding: .utf8)
        #expect(calls.contains("crosvm powerbtn \(work)/vm.sock") && !calls.contains("crosvm stop"), "\(calls)")
        #expect(guest.consoleTail(lines: 3).contains("powered off"))
    }

    @Test func debianKernelConfigurationIsChecked() throws {
        try shell("\(CommandLineTests.root.path)/scripts/guest-image \(CommandLineTests.root.path)/.build-guest", seconds: 600)
        let build = CommandLineTests.root.path + "/.build-guest"
        // Debian builds the virtio console as a module: no hvc0 at boot, as the field deployment found.
        let doctor = try Spawned("\(CommandLineTests.binary.path) doctor --kernel-config \(build)/config --guest crosvm",
                                 log: NSTemporaryDirectory() + "sovnet-doctor-\(getpid()).log")
        #expect(doctor.wait(30) == 1)
        #expect(doctor.output.contains("CONFIG_VIRTIO_CONSOLE"), "\(doctor.output)")
        #expect(doctor.output.contains("a crosvm guest cannot run on this kernel: it lacks CONFIG_VIRTIO_CONSOLE"))
        let config = try KernelConfig.load(file: build + "/config")
        let report = KernelReport(config: config, source: .file("config"), vsock: true)
        #expect(report.lines.first { $0.requirement.anyOf == ["TUN"] }?.verdict == .module("TUN"))
        #expect(report.lines.first { $0.requirement.anyOf == ["SYSVIPC"] }?.verdict == .present("SYSVIPC"))
        #expect(report.missing.map(\.anyOf) == [["VIRTIO_CONSOLE"]])
        // Debian's image has an xz payload and no embedded configuration: said so.
        #expect(throws: KernelImage.Problem.self) { try KernelConfig.load(image: build + "/vmlinuz") }
        do {
            _ = try KernelConfig.load(image: build + "/vmlinuz")
        } catch {
            #expect(error.description.contains("built without CONFIG_IKCONFIG"))
        }
    }

    /// Images made here with the configuration embedded as the kernel embeds
    /// it (IKCFG_ST, gzip, IKCFG_ED): plain, gzip-compressed whole (arm64
    /// Image.gz), and as an xz payload behind a stub (x86 bzImage).
    @Test func embeddedConfigurationIsFoundInCompressedImages() throws {
        let work = NSTemporaryDirectory() + "sovnet-ikcfg-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try shell("""
            cd \(work) && python3 -c '
            import gzip, lzma, os
            config = b"CONFIG_VIRTIO_CONSOLE=y\\nCONFIG_VIRTIO_PCI=y\\nCONFIG_TUN=y\\n# CONFIG_SYSVIPC is not set\\nCONFIG_VSOCKETS=m\\n"
            kernel = os.urandom(40000) + b"IKCFG_ST" + gzip.compress(config) + b"IKCFG_ED" + os.urandom(40000)
            open("plain", "wb").write(kernel)
            open("Image.gz", "wb").write(gzip.compress(kernel))
            open("bzImage", "wb").write(b"MZ" + os.urandom(20000) + lzma.compress(kernel, format=lzma.FORMAT_XZ) + os.urandom(100))
            '
            """)
        for image in ["plain", "Image.gz", "bzImage"] {
            let config = try KernelConfig.load(image: "\(work)/\(image)")
            #expect(config.options == ["VIRTIO_CONSOLE": "y", "VIRTIO_PCI": "y", "TUN": "y", "VSOCKETS": "m"], "\(image)")
        }
        let doctor = try Spawned("\(CommandLineTests.binary.path) doctor --kernel \(work)/bzImage --guest qemu",
                                 log: work + "/doctor.log")
        #expect(doctor.wait(30) == 2, "missing options that are not essential: \(doctor.output)")
        #expect(doctor.output.contains("CONFIG_SYSVIPC"))
        #expect(doctor.output.contains("MISSING  needed by PostgreSQL"))
    }

    @Test func configurationErrorsNameTheKey() {
        #expect(throws: LaunchConfiguration.Problem("guest.console 'tty1' must be hvc0 or ttyS0")) {
            try LaunchConfiguration.parse("guest:\n  console: tty1\n")
        }
        #expect(throws: LaunchConfiguration.Problem("guest.kernel is needed for a qemu guest")) {
            try LaunchConfiguration.parse("guest:\n  kind: qemu\n")
        }
        #expect(throws: LaunchConfiguration.Problem("name 'a b' must be 1 to 32 letters, digits, '-' or '_'")) {
            try LaunchConfiguration.parse("name: a b\n")
        }
        #expect(throws: LaunchConfiguration.Problem("proxy.listen must be the running proxy's unix:// listener for a netns guest")) {
            try LaunchConfiguration.parse("proxy:\n  api: unix:///run/sovnet/api.sock\n")
        }
        #expect(throws: LaunchConfiguration.Problem("guest.transport vsock does not fit a qemu guest")) {
            try LaunchConfiguration.parse("guest:\n  kind: qemu\n  kernel: /k\n  transport: vsock\n")
        }
        #expect(throws: LaunchConfiguration.Problem(
            "guest.transport serial does not fit a netns guest (it reaches the proxy over a unix socket)")) {
            try LaunchConfiguration.parse("guest:\n  transport: serial\n")
        }
        #expect(throws: LaunchConfiguration.Problem("guest.stop-timeout 900 must be 0 to 600 seconds")) {
            try LaunchConfiguration.parse("guest:\n  kind: qemu\n  kernel: /k\n  stop-timeout: 900\n")
        }
        #expect((try? LaunchConfiguration.parse(""))?.guest.kind == .netns)
        #expect((try? LaunchConfiguration.parse("guest:\n  kind: crosvm\n  kernel: /k\n  disk: /d\n"))?.transport == .vsock)
    }

    @Test func tailscaleOutputsAreRead() throws {
        let running = try TailscaleStatus.parse(Array(try Data(contentsOf: URL(fileURLWithPath:
            CommandLineTests.root.path + "/Tests/Peers/tailscale/status-running.json"))))
        #expect(running.verdict.ok && running.ipv4 == "100.101.102.103")
        let ping = TailscalePingReport.parse("""
            pong from phone-vm (100.101.102.103) via DERP(fra) in 48ms
            pong from phone-vm (100.101.102.103) via 203.0.113.7:41641 in 12ms
            """, address: "100.101.102.103")
        #expect(ping.pongs == 2 && ping.path == "direct" && ping.via == "203.0.113.7:41641" && ping.milliseconds == [48, 12])
        #expect(TailscalePingReport.parse("ping \"100.1.2.3\" timed out\n", address: "100.1.2.3").verdict.ok == false)
        #expect(throws: LaunchError.self) { try TailscaleStatus.parse(Array("{\"Peer\": {}}".utf8)) }
    }
}
