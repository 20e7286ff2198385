// `sovnet up`: from nothing to a guest proven reachable, one step at a time,
// each shown with its elapsed time and verdict (`Progress`):
//   1. preflight: programs, /dev/kvm, the guest's files, its kernel's configuration;
//   2. sockets: the run directory's `LaunchLock` taken (a launch that cannot
//      take it, or that finds a dead launch's guest still running, stops
//      there and touches nothing), dead socket files removed, live ones stop
//      the launch naming their owner;
//   3. network: `sovnet proxy` in-process (or the configured running one);
//   4. guest: started (netns, QEMU or crosvm), lease awaited in the proxy's lease table;
//   5. checks: `ReachabilityChecks`.
// Then the summary table (or JSON) and, unless `once`, the launcher stays up
// supervising the guest until a signal, `sovnet down`, or the guest's end.
// Everything it started is stopped on the way out, by PID.
import CSovnetShim
import Foundation
import Glibc
import Logging
import SovnetCore
import SovnetGuest
import SovnetLink
import SovnetWire

/// Brings a guest up and checks it.
public final class Launcher {
    /// How `sovnet up` was asked to run.
    public struct Options: Sendable {
        /// Check, report, then stop everything (no supervision).
        public var once = false
        public var json = false
        /// Capture the virtual network's frames (in-process proxy only).
        public var pcap: String?
        public var debug = false
        /// The in-process proxy's log (proxy.log): its level and format.
        public var logLevel: Logger.Level = .info
        public var logFormat: LogFormat = .text

        public init() {}
    }

    public let configuration: LaunchConfiguration
    public let runDirectory: String
    private let options: Options
    private let progress: Progress
    private var report: LaunchReport
    private var proxy: Proxy?
    private var proxyFinished = ProxyThreadState()
    private var guest: LaunchedGuest?
    /// Held from the sockets step on: this launch owns the run directory's state.
    private var lock: LaunchLock?
    private var signals: Int32 = -1
    private let started = Date()

    public init(configuration: LaunchConfiguration, runDirectory: String? = nil, options: Options, progress: Progress = Progress()) {
        self.configuration = configuration
        self.runDirectory = runDirectory ?? LaunchState.runDirectory(name: configuration.name)
        self.options = options
        self.progress = progress
        report = LaunchReport(name: configuration.name, kind: configuration.guest.kind.rawValue,
                              guestMAC: configuration.guestMAC.description)
    }

    var apiPath: String { runDirectory + "/api.sock" }
    var api: ControlClient {
        let endpoint = configuration.proxy.flatMap { try? Endpoint(url: $0.api) } ?? .unix(path: apiPath)
        return ControlClient(endpoint: endpoint, timeout: .seconds(15))
    }

    /// Runs the whole launch; returns the exit code.
    public func run() -> Int32 {
        signals = sovnet_signal_pipe()
        defer {
            tearDown()
            progress.close()
        }
        let reached = launch()
        if !reached, let guest {
            let tail = guest.consoleTail(lines: 20)
            if !tail.isEmpty { progress.note("guest console (last lines):\n" + tail) }
        }
        try? FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        saveState()
        let summary = Array((options.json ? report.json : report.table).utf8)
        _ = summary.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        guard reached, report.exitCode == 0, !options.once else { return report.exitCode == 0 && reached ? 0 : 1 }
        progress.note("serving; stop with Ctrl-C or `sovnet down --name \(configuration.name)`")
        return supervise()
    }

    /// Steps 1 to 5; false when a step failed and the launch stopped there.
    private func launch() -> Bool {
        guard step("preflight", preflight) else { return false }
        guard step("sockets", sockets) else { return false }
        guard step("network", startNetwork) else { return false }
        guard step("guest", startGuest) else { return false }
        guard step("lease", awaitLease), let address = report.guestAddress else { return false }
        if let services = configuration.guest.services, !services.isEmpty {
            guard step("services", { try guest?.leased(); return "started \(services.count) in the guest" }) else { return false }
        }
        let checks = ReachabilityChecks(configuration: configuration, api: api, runDirectory: runDirectory)
        report.results += checks.run(address: address, progress: progress)
        return true
    }

    /// Runs a step: its line shows its outcome; a thrown error fails it.
    private func step(_ name: String, _ body: () throws -> String) -> Bool {
        progress.begin(name)
        let begun = ContinuousClock.now
        do {
            let detail = try body()
            let warned = detail.hasPrefix("warning: ")
            report.results.append(CheckResult(name: name, verdict: warned ? .warn : .pass, detail: detail,
                                              seconds: (ContinuousClock.now - begun).milliseconds / 1000))
            progress.end(detail)
            return true
        } catch {
            report.results.append(CheckResult(name: name, verdict: .fail, detail: "\(error)",
                                              seconds: (ContinuousClock.now - begun).milliseconds / 1000))
            progress.end("\(error)", ok: false)
            return false
        }
    }

    // MARK: Steps

    private func preflight() throws -> String {
        let kind = configuration.guest.kind
        var facts: [String] = []
        var warnings: [String] = []
        switch kind {
        case .netns:
            guard getuid() == 0 else { throw LaunchError("a netns guest needs root (network namespaces and tap devices)") }
            guard Executable.find("ip") != nil else { throw LaunchError("ip (iproute2) is not installed") }
            facts.append("ip found")
        case .qemu, .crosvm:
            let binary = configuration.guest.binary ?? (kind == .qemu ? "qemu-system-x86_64" : "crosvm")
            guard let path = Executable.find(binary) else { throw LaunchError("\(binary) not found in PATH") }
            facts.append(path)
            let kvm = QemuCommand.kvmUsable
            if kind == .crosvm || configuration.guest.accel == "kvm" {
                guard kvm else { throw LaunchError("/dev/kvm is not usable (\(String(cString: strerror(errno)))): \(kind) needs KVM") }
            }
            facts.append(kind == .qemu ? "accelerator \(QemuCommand.accelerator(configuration.guest.accel, kvmUsable: kvm))" : "KVM")
            for (key, path) in [("kernel", configuration.guest.kernel), ("initrd", configuration.guest.initrd),
                                ("disk", configuration.guest.disk)] {
                guard let path else { continue }
                guard access(path, R_OK) == 0 else {
                    throw LaunchError("guest.\(key) \(path): \(String(cString: strerror(errno)))")
                }
            }
        }
        let check = try KernelCheck.run(configuration)
        if !check.missingEssential.isEmpty {
            throw LaunchError("the guest kernel lacks " + check.missingEssential.map(Self.describe).joined(separator: "; ")
                              + " (\(check.source))")
        }
        if let unchecked = check.unchecked { warnings.append(unchecked) }
        for requirement in check.missingOther { warnings.append("kernel lacks \(Self.describe(requirement))") }
        for option in check.earlyModules {
            let early = kind == .qemu ? "kernel messages before that go to boot.log, on ttyS0" : "kernel messages before that are lost"
            warnings.append("\(option)=m: the initramfs must load it (\(early))")
        }
        if check.unchecked == nil { facts.append("kernel config checked for \(kind) (\(check.source))") }
        for warning in warnings { progress.note("warning: \(warning)") }
        return (warnings.isEmpty ? "" : "warning: \(warnings.count) warning(s); ") + facts.joined(separator: ", ")
    }

    static func describe(_ requirement: KernelRequirement) -> String {
        requirement.anyOf.map { "CONFIG_\($0)" }.joined(separator: " or ") + " (needed by \(requirement.neededBy))"
    }

    private func sockets() throws -> String {
        try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let name = configuration.name
        guard let lock = try LaunchLock.take(runDirectory: runDirectory) else {
            let pid = (try? LaunchState.load(runDirectory: runDirectory)).map { " (sovnet up pid \($0.launcherPID))" } ?? ""
            throw LaunchError("\(name) is already up\(pid): `sovnet down --name \(name)` first")
        }
        if let previous = try? LaunchState.load(runDirectory: runDirectory) {
            let left = previous.leftovers()
            guard left.isEmpty else {
                throw LaunchError("\(name)'s last launch (sovnet up pid \(previous.launcherPID)) died and left processes "
                                  + "\(left.map(String.init).joined(separator: ", ")) running: "
                                  + "`sovnet down --name \(name)` stops them")
            }
        }
        self.lock = lock
        // The sockets this launch binds: a running proxy's are its own.
        var paths = configuration.proxy == nil ? [apiPath] : []
        switch configuration.guest.kind {
        case .netns, .qemu: if configuration.proxy == nil { paths.append(guestSocket) }
        case .crosvm:
            paths.append(CrosvmCommand.controlSocket(runDirectory: runDirectory))
            if configuration.transport == .serial { paths.append(guestSocket) }
        }
        if configuration.guest.kind == .qemu { paths.append(QemuCommand.monitorSocket(runDirectory: runDirectory)) }
        var removed: [String] = []
        for path in paths {
            switch SocketProbe.probe(path) {
            case .absent: break
            case .staleRemoved: removed.append((path as NSString).lastPathComponent)
            case .live(let owner):
                throw LaunchError("\(path) is in use" + (owner.map { " by \($0)" } ?? "") + ": stop it or use another name")
            case .notASocket:
                throw LaunchError("\(path) exists and is not a socket: remove it")
            }
        }
        return removed.isEmpty ? "\(paths.count) free" : "removed stale \(removed.joined(separator: ", "))"
    }

    /// The unix socket a netns guest or a hypervisor connects to: the
    /// running proxy's listener, or the one the in-process proxy opens.
    private var guestSocket: String {
        if let listen = configuration.proxy?.listen, case .unix(let path)? = try? Endpoint(url: listen) { return path }
        switch configuration.transport {
        case .serial?: return QemuCommand.serialSocket(runDirectory: runDirectory)
        case .virtioNet?: return QemuCommand.networkSocket(runDirectory: runDirectory)
        default: return runDirectory + "/network.sock"
        }
    }

    /// Where the in-process proxy listens for the guest, with the framing.
    private var guestEndpoint: (Endpoint, Framing) {
        switch (configuration.guest.kind, configuration.transport) {
        case (_, .serial?): (.unix(path: guestSocket), .vm)
        case (.netns, _): (.unix(path: guestSocket), .vm)
        case (.qemu, _): (.unix(path: guestSocket), .qemu)
        case (.crosvm, _): (.vsock(cid: nil, port: 1024, path: nil), .vm)
        }
    }

    private func startNetwork() throws -> String {
        if let existing = configuration.proxy {
            _ = try api.request("GET", "/stats")
            return "using the running proxy at \(existing.api)"
        }
        let (endpoint, framing) = guestEndpoint
        let serial = configuration.transport == .serial
        var options = ProxyOptions(listen: framing == .vm && !serial ? [endpoint] : [],
                                   singleGuest: framing == .vm ? [] : [(endpoint, framing)],
                                   network: VirtualNetworkConfiguration(), exitOnDisconnect: false, socketMode: 0o600,
                                   pcapPath: self.options.pcap, pcapFilter: nil, pidFile: nil, debug: self.options.debug,
                                   dnsUpstreams: [])
        options.resolvConf = "/etc/resolv.conf"
        options.hostSearchDomains = true
        options.services = [.unix(path: apiPath)]
        if serial { options.listenSerial = [endpoint] }
        options.handleSignals = false
        let logPath = runDirectory + "/proxy.log"
        let logger = Logger(label: "sovnet.proxy") { [options = self.options] in
            SovnetLogHandler(label: $0, path: logPath, level: options.logLevel, format: options.logFormat)
        }
        let proxy = try Proxy(options: options, logger: logger)
        self.proxy = proxy
        let finished = proxyFinished
        let running = UncheckedProxy(proxy: proxy)
        let thread = Thread {
            do {
                _ = try running.proxy.run()
            } catch {
                finished.error = "\(error)"
            }
            finished.done = true
        }
        thread.start()
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if finished.done { throw LaunchError("the proxy stopped: \(finished.error ?? "see \(logPath)")") }
            if (try? api.request("GET", "/stats"))?.status == 200 {
                return "proxy listening on \(endpoint) (\(serial ? "vm over a serial line" : "\(framing)")), API on \(apiPath)"
            }
            usleep(20_000)
        }
        throw LaunchError("the proxy's API did not answer within 5 s; see \(logPath)")
    }

    private func startGuest() throws -> String {
        let guest: LaunchedGuest
        switch configuration.guest.kind {
        case .netns:
            guest = NetnsGuest(configuration: configuration, runDirectory: runDirectory, networkURL: "unix://\(guestSocket)")
        case .qemu:
            guest = HypervisorGuest(configuration: configuration, runDirectory: runDirectory,
                                    arguments: QemuCommand.arguments(configuration, runDirectory: runDirectory,
                                                                     kvmUsable: QemuCommand.kvmUsable, networkSocket: guestSocket))
        case .crosvm:
            guest = HypervisorGuest(configuration: configuration, runDirectory: runDirectory,
                                    arguments: CrosvmCommand.arguments(configuration, runDirectory: runDirectory))
        }
        self.guest = guest
        try guest.start()
        saveState()
        return guest.summary
    }

    private func awaitLease() throws -> String {
        let timeout = Double(configuration.checks.leaseTimeout ?? 30)
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        let mac = configuration.guestMAC.description
        while ContinuousClock.now < deadline {
            if let status = guest?.process?.exitStatus, let guest {
                throw LaunchError("the guest ended before its lease: \(guest.ended(status: status).message)")
            }
            if let leases = try? api.json("GET", "/leases", as: [String: String].self),
               let cam = try? api.json("GET", "/cam", as: [String: Int].self), cam[mac] != nil,
               let address = leases.first(where: { $0.value == mac })?.key {
                report.guestAddress = address
                return "\(address) for \(mac)"
            }
            usleep(50_000)
        }
        throw LaunchError("no lease for \(mac) within \(Int(timeout)) s")
    }

    // MARK: Serving and stopping

    /// Waits for a signal or the guest's end; the exit code.
    private func supervise() -> Int32 {
        saveState()
        var pollDescriptor = pollfd(fd: signals, events: Int16(POLLIN), revents: 0)
        while true {
            if poll(&pollDescriptor, 1, 200) > 0 {
                var number: UInt8 = 0
                _ = read(signals, &number, 1)
                progress.note("signal \(number): stopping")
                return 0
            }
            if proxyFinished.done {
                progress.note("the proxy stopped: \(proxyFinished.error ?? "see \(runDirectory)/proxy.log")")
                return 1
            }
            if let guest, let status = guest.process?.exitStatus {
                let (ok, message) = guest.ended(status: status)
                progress.note(message)
                return ok ? 0 : 1
            }
        }
    }

    private func tearDown() {
        guest?.stop()
        guest = nil
        proxy?.stop()
        let deadline = ContinuousClock.now + .seconds(10)
        while proxy != nil, !proxyFinished.done, ContinuousClock.now < deadline { usleep(10_000) }
        proxy = nil
        if lock != nil, let state = try? LaunchState.load(runDirectory: runDirectory), state.launcherPID == getpid() {
            unlink(LaunchState.path(runDirectory: runDirectory))
        }
        lock = nil
        if signals >= 0 { close(signals) }
    }

    /// Writes state.json, if this launch owns the run directory.
    private func saveState() {
        guard lock != nil else { return }
        let state = LaunchState(configuration: configuration, launcherPID: getpid(), guestPID: guest?.process?.pid,
                                api: "\(api.endpoint)", namespace: (guest as? NetnsGuest)?.namespace,
                                started: started, report: report)
        try? state.save(runDirectory: runDirectory)
    }
}

/// The proxy handed to its thread, which alone runs it.
private struct UncheckedProxy: @unchecked Sendable {
    let proxy: Proxy
}

/// Whether the proxy's thread has ended, and why; read by the launcher.
final class ProxyThreadState: @unchecked Sendable {
    private let lock = NSLock()
    private var _done = false
    private var _error: String?

    var done: Bool {
        get { lock.withLock { _done } }
        set { lock.withLock { _done = newValue } }
    }

    var error: String? {
        get { lock.withLock { _error } }
        set { lock.withLock { _error = newValue } }
    }
}
