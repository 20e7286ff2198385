// `sovnet up` and its companions: `down`, `status`, `check` and `doctor`.
// Options and the configuration file become a `LaunchConfiguration`; the
// drivers (`Launcher`, `ReachabilityChecks`, `KernelCheck`) do the work.
import ArgumentParser
import SovnetGuestCommands
import Foundation
import Glibc
import SovnetDrivers
import SovnetLink

/// Where a guest's configuration and run directory come from.
struct GuestSelection: ParsableArguments {
    @Option(name: .customLong("config"), help: "The guest's YAML configuration (default: ./sovnet.yaml when it exists).", completion: .file())
    var config: String?

    @Option(name: .customLong("name"), help: "The guest's name (default: the configuration's, else 'sovnet').")
    var name: String?

    @Option(name: .customLong("run-dir"), help: "Where sockets, logs and state go (default: /run/sovnet/NAME as root).", completion: .directory)
    var runDirectory: String?

    /// The configuration file's contents, or an empty configuration.
    func loadConfiguration() throws -> LaunchConfiguration {
        let path = config ?? (FileManager.default.fileExists(atPath: "sovnet.yaml") ? "sovnet.yaml" : nil)
        var configuration = LaunchConfiguration()
        if let path {
            let text = try readTextFile(path, what: "the configuration")
            do {
                configuration = try LaunchConfiguration.parse(text)
            } catch {
                throw RuntimeFailure("\(path): \(error)")
            }
        }
        if let name { configuration.name = name }
        return configuration
    }

    func runDirectory(for name: String) -> String {
        runDirectory ?? LaunchState.runDirectory(name: name)
    }

    /// The state a running `sovnet up` left.
    func loadState() throws -> (LaunchState, String) {
        let name = try name ?? loadConfiguration().name
        let directory = runDirectory(for: name)
        return (try LaunchState.load(runDirectory: directory), directory)
    }
}

struct UpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Boot a guest (network namespace, QEMU or crosvm) and check that it is reachable.",
        discussion: """
            With no arguments (as root), a network namespace guest running sovnet forward. \
            Steps: preflight, sockets, network, guest, lease, services, then the checks. \
            Exit status 0 when every check passed, 1 naming the first failure.
            """
    )

    @OptionGroup var selection: GuestSelection

    @Option(name: .customLong("guest"), help: "netns, qemu or crosvm.")
    var kind: LaunchConfiguration.Kind?

    @Option(name: .customLong("kernel"), help: "The guest kernel image (qemu, crosvm).", completion: .file())
    var kernel: String?

    @Option(name: .customLong("initrd"), help: "An initramfs (qemu, crosvm).", completion: .file())
    var initrd: String?

    @Option(name: .customLong("disk"), help: "The root disk image (qemu, crosvm).")
    var disk: String?

    @Option(name: .customLong("params"), help: "Kernel parameters after console=… (e.g. init=/sbin/sovnet-init).")
    var params: String?

    @Option(name: .customLong("console"), help: "hvc0 (virtio console, default) or ttyS0.")
    var console: String?

    @Option(name: .customLong("transport"),
            help: "How the guest's frames reach the proxy: qemu virtio-net (default) or serial; crosvm vsock (default) or serial.")
    var transport: LaunchConfiguration.Transport?

    @Option(name: .customLong("mac"), help: "The guest's MAC address.")
    var mac: String?

    @Option(name: .customLong("tcp"), help: "A guest TCP port that must accept connections (repeatable).")
    var tcp: [UInt16] = []

    @Option(name: .customLong("ping"), help: "Echo requests from the gateway to the guest (0: none; default 3).")
    var ping: Int?

    @Option(name: .customLong("lease-timeout"), help: "Seconds to wait for the guest's DHCP lease (default 30).")
    var leaseTimeout: Int?

    @Option(name: .customLong("service"), help: "netns: a command to run in the namespace after the lease (repeatable).")
    var services: [String] = []

    @Flag(name: .customLong("once"), help: "Check, report and stop everything again (no supervision).")
    var once = false

    @Flag(name: .customLong("json"), help: "Print the report as JSON.")
    var json = false

    @Flag(name: .customLong("dry-run"), help: "Print the hypervisor's command line and exit.")
    var dryRun = false

    @Option(name: .customLong("pcap"), help: "Capture the virtual network's frames to this pcap file.", completion: .file())
    var pcap: String?

    @Flag(name: .customLong("debug"), help: "Log every frame in the proxy's log.")
    var debug = false

    @OptionGroup var logging: LoggingOptions

    /// The configuration file with the flags on top.
    func launchConfiguration() throws -> LaunchConfiguration {
        var configuration = try selection.loadConfiguration()
        if let kind { configuration.guest.kind = kind }
        if let kernel { configuration.guest.kernel = kernel }
        if let initrd { configuration.guest.initrd = initrd }
        if let disk { configuration.guest.disk = disk }
        if let params { configuration.guest.params = params }
        if let console { configuration.guest.console = console }
        if let transport { configuration.guest.transport = transport }
        if let mac { configuration.guest.mac = mac }
        if !tcp.isEmpty { configuration.checks.tcp = tcp }
        if let ping { configuration.checks.ping = ping }
        if let leaseTimeout { configuration.checks.leaseTimeout = leaseTimeout }
        if !services.isEmpty { configuration.guest.services = services }
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.description)
        }
        return configuration
    }

    func run() throws {
        let configuration = try Self.reportingUsage(launchConfiguration)
        let directory = selection.runDirectory(for: configuration.name)
        if dryRun {
            let arguments: [String]
            switch configuration.guest.kind {
            case .netns: throw ValidationError("--dry-run shows a hypervisor's command line: use --guest qemu or crosvm")
            case .qemu: arguments = QemuCommand.arguments(configuration, runDirectory: directory, kvmUsable: QemuCommand.kvmUsable)
            case .crosvm: arguments = CrosvmCommand.arguments(configuration, runDirectory: directory)
            }
            print(arguments.map(Self.quote).joined(separator: " "))
            return
        }
        var options = Launcher.Options()
        options.once = once
        options.json = json
        options.pcap = pcap
        options.debug = debug
        (options.logLevel, options.logFormat) = try Self.reportingUsage {
            (try logging.level(default: debug ? .debug : .info), try logging.logFormat())
        }
        let code = Launcher(configuration: configuration, runDirectory: directory, options: options).run()
        if code != 0 { throw ExitCode(code) }
    }

    /// Quotes an argument for a POSIX shell when it needs it.
    static func quote(_ argument: String) -> String {
        let plain = argument.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,@%+".contains($0) }
        return plain && !argument.isEmpty ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

struct DownCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop a guest that sovnet up started, with its proxy, and remove its sockets."
    )

    @OptionGroup var selection: GuestSelection

    func run() throws {
        let (state, directory) = try selection.loadState()
        let name = state.configuration.name
        if LaunchState.launcherRuns(runDirectory: directory) {
            kill(state.launcherPID, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(60)
            while LaunchState.launcherRuns(runDirectory: directory), ContinuousClock.now < deadline { usleep(50_000) }
            guard !LaunchState.launcherRuns(runDirectory: directory) else {
                throw RuntimeFailure("sovnet up (pid \(state.launcherPID)) did not stop within 60 s")
            }
            print("stopped \(name) (sovnet up pid \(state.launcherPID))")
        } else {
            // The launcher died without cleaning up: end what it left, by PID.
            let left = state.leftovers()
            if !left.isEmpty {
                Self.stop(left)
                print("stopped processes \(left.map(String.init).joined(separator: ", ")) left by a dead launcher")
            }
            if let namespace = state.namespace { NetnsGuest.remove(namespace: namespace, runDirectory: directory) }
            print("cleaned up after \(name), whose launcher (pid \(state.launcherPID)) had died")
        }
        // Sockets nobody listens on any more are removed; a live one is left alone.
        for socket in ["api.sock", "network.sock", "qemu.sock", "vm.sock"] { _ = SocketProbe.probe(directory + "/" + socket) }
        unlink(LaunchState.path(runDirectory: directory))
    }

    /// Sends SIGTERM to `pids`, and SIGKILL to those still running 5 s later.
    static func stop(_ pids: [Int32]) {
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(5)
        while pids.contains(where: LaunchState.isRunning), ContinuousClock.now < deadline { usleep(50_000) }
        for pid in pids where LaunchState.isRunning(pid) { kill(pid, SIGKILL) }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a launched guest: processes, lease, port forwards and the last check results."
    )

    @OptionGroup var selection: GuestSelection

    @Flag(name: .customLong("json"), help: "Print the state as JSON.")
    var json = false

    func run() throws {
        let (state, directory) = try selection.loadState()
        let running = LaunchState.launcherRuns(runDirectory: directory)
        let client = ControlClient(endpoint: try Endpoint(url: state.api), timeout: .seconds(5))
        let leases = running ? try? client.json("GET", "/leases", as: [String: String].self) : nil
        let forwards = running ? try? client.json("GET", "/services/forwarder/all", as: [[String: String]].self) : nil
        let guestEnded = state.guestPID.map { !LaunchState.isRunning($0) } ?? false
        let left = running ? [] : state.leftovers()
        let problem: String? = if !running {
            "DOWN (its launcher is gone)" + (left.isEmpty ? "" : "; processes \(left.map(String.init).joined(separator: ", ")) "
                                            + "still run: `sovnet down --name \(state.configuration.name)` stops them")
        } else if guestEnded {
            "up (sovnet up pid \(state.launcherPID)), but its guest (pid \(state.guestPID ?? 0)) has ended"
        } else if leases == nil {
            "up (sovnet up pid \(state.launcherPID)), but its API \(state.api) does not answer"
        } else {
            nil
        }
        if json {
            struct Status: Encodable {
                var state: LaunchState
                var running: Bool
                var healthy: Bool
                var leases: [String: String]?
                var forwards: [[String: String]]?
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            let status = Status(state: state, running: running, healthy: problem == nil, leases: leases, forwards: forwards)
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
        } else {
            print("\(state.configuration.name): \(state.configuration.guest.kind) guest, "
                  + (problem ?? "up (sovnet up pid \(state.launcherPID))"))
            print("since \(state.started), API \(state.api)" + (state.namespace.map { ", namespace \($0)" } ?? ""))
            if let leases {
                print("leases: " + (leases.isEmpty ? "none" : leases.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
            }
            if let forwards, !forwards.isEmpty {
                print("forwards: " + forwards.map { "\($0["protocol"] ?? "tcp") \($0["local"] ?? "") → \($0["remote"] ?? "")" }
                    .joined(separator: ", "))
            }
            if running, let report = state.report { print("\nlast checks:\n" + report.table, terminator: "") }
        }
        if problem != nil { throw ExitCode(1) }
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Run the reachability checks again against a launched guest."
    )

    @OptionGroup var selection: GuestSelection

    @Flag(name: .customLong("json"), help: "Print the report as JSON.")
    var json = false

    func run() throws {
        var (state, directory) = try selection.loadState()
        guard LaunchState.launcherRuns(runDirectory: directory) else {
            throw RuntimeFailure("\(state.configuration.name) is down")
        }
        let client = ControlClient(endpoint: try Endpoint(url: state.api), timeout: .seconds(15))
        let mac = state.configuration.guestMAC.description
        let leases = try client.json("GET", "/leases", as: [String: String].self)
        guard let address = leases.first(where: { $0.value == mac })?.key else {
            throw RuntimeFailure("no lease for \(mac) in the proxy")
        }
        var report = LaunchReport(name: state.configuration.name, kind: state.configuration.guest.kind.rawValue, guestMAC: mac)
        report.guestAddress = address
        report.results.append(CheckResult(name: "lease", verdict: .pass, detail: "\(address) for \(mac)"))
        let progress = Progress()
        report.results += ReachabilityChecks(configuration: state.configuration, api: client, runDirectory: directory)
            .run(address: address, progress: progress)
        progress.close()
        state.report = report
        try? state.save(runDirectory: directory)
        print(json ? report.json : report.table, terminator: "")
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check a guest kernel's configuration for what sovnet, the console, PostgreSQL and Tailscale need."
    )

    @Option(name: .customLong("kernel"), help: "A kernel image (its built-in configuration is read; gzip or xz).", completion: .file())
    var kernel: String?

    @Option(name: .customLong("kernel-config"), help: "A kernel .config file (or config.gz).", completion: .file())
    var kernelConfig: String?

    @Option(name: .customLong("guest"), help: "The guest kind the kernel is for (default crosvm: vsock checked too).")
    var kind: LaunchConfiguration.Kind = .crosvm

    @Option(name: .customLong("transport"),
            help: "How the guest reaches the proxy: virtio-net, vsock or serial (default: the kind's).")
    var transport: LaunchConfiguration.Transport?

    func run() throws {
        try Self.reportingUsage(report)
    }

    private func report() throws {
        let config: KernelConfig
        let source: KernelConfig.Source
        do {
            if let kernelConfig {
                config = try KernelConfig.load(file: kernelConfig)
                source = .file(kernelConfig)
            } else if let kernel {
                config = try KernelConfig.load(image: kernel)
                source = .image(kernel)
            } else if FileManager.default.fileExists(atPath: "/proc/config.gz") {
                config = try KernelConfig.load(file: "/proc/config.gz")
                source = .running
            } else {
                throw ValidationError("give --kernel IMAGE or --kernel-config FILE (this kernel has no /proc/config.gz)")
            }
        } catch let error as KernelImage.Problem {
            throw RuntimeFailure(error.description)
        }
        var guest = LaunchConfiguration()
        guest.guest.kind = kind
        guest.guest.transport = transport
        do {
            try guest.checkTransport()
        } catch {
            throw ValidationError(error.description)
        }
        let report = KernelReport(config: config, source: source, vsock: guest.transport == .vsock)
        print(report.text, terminator: "")
        let essential = KernelCheck.essential(guest)
        let fatal = report.missing.filter { $0.anyOf.contains(where: essential.contains) }
        if !fatal.isEmpty {
            print("a \(kind) guest cannot run on this kernel: it lacks " + fatal.map { $0.anyOf.map { "CONFIG_\($0)" }.joined(separator: " or ") }.joined(separator: ", "))
            throw ExitCode(1)
        }
        if !report.missing.isEmpty {
            print("\(report.missing.count) option(s) missing: the guest runs, without what needs them")
            throw ExitCode(2)
        }
        print("everything sovnet checks for is there")
    }
}

extension LaunchConfiguration.Kind: ExpressibleByArgument {}
extension LaunchConfiguration.Transport: ExpressibleByArgument {}
