// `sovnet-init`: PID 1 for a guest that should run its network and a few
// services and nothing else (the field deployment's OpenRC hung, and the
// shell init that replaced it had no PATH).
//
// Boot: mount /proc, /sys, /dev, /dev/pts, /dev/shm and /run; set PATH and
// HOME, the host name from /etc/hostname; load /etc/sovnet/modules (tun,
// the virtio console, vsock, the power button); log to /dev/console once it
// can be opened (with console=hvc0 and a modular virtio_console, only after
// the module is loaded); bring up lo; start `sovnet forward` with the
// arguments in /etc/sovnet/forward, then, once the guest has a default route
// (or after 15 s), the services of /etc/sovnet/services. Each runs in its
// own session and is started again when it exits, with backoff
// (`ServiceSupervisor`).
//
// Then it waits: reaps every child, orphans included (SIGCHLD), restarts
// services, and on SIGTERM, SIGUSR1, SIGUSR2 or SIGPWR (busybox's halt and
// poweroff, a container runtime's stop) or the power button it powers off;
// on SIGINT (Ctrl-Alt-Del) it restarts. Shutting down stops the services in
// reverse order (the forwarder last, which releases its DHCP lease), ends
// whatever else still runs, syncs, remounts / read-only and calls reboot(2).
// PID 1 must never exit, so no error ends it: each is logged instead.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import SovnetGuestCore
import SovnetLink

/// The guest's init.
public final class GuestInit {
    private let logger: Logger
    private var services: [ServiceDefinition] = []
    private var supervisor = ServiceSupervisor(count: 0, ungated: 0)
    private var signals: Int32 = -1
    private var powerButton: PowerButton?
    private var nextButtonScan = MonotonicInstant.now
    private var shutdown: Shutdown?
    private var shutdownDeadline: MonotonicInstant?
    private var orphansReaped = 0
    /// Every service has stopped.
    private var allStopped = false
    private let version: String

    /// How the guest ends.
    public enum Shutdown: Sendable {
        case powerOff, restart
    }

    /// Why `sovnet init` refused to start.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Parameter version: what the log's first line names.
    public init(logger: Logger, version: String) {
        self.logger = logger.subsystem("init")
        self.version = version
    }

    /// Runs as PID 1 until the guest powers off or restarts.
    public func run() throws(Failure) -> Never {
        guard getpid() == 1 else {
            throw Failure(description: "sovnet init runs as PID 1 only (boot with init=\(GuestLayout.initLink)); "
                             + "this is PID \(getpid())")
        }
        umask(0o022)
        _ = chdir("/")
        let descriptorsMissing = sovnet_standard_descriptors_filled() != 0
        let wanted: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPWR]
        signals = wanted.withUnsafeBufferPointer { sovnet_signal_pipe_with($0.baseAddress, Int32($0.count)) }
        boot(descriptorsMissing: descriptorsMissing)
        supervise()
        finish()
    }

    // MARK: Boot

    /// Mounts, modules, the console, then everything that logs.
    private func boot(descriptorsMissing: Bool) {
        var problems: [String] = []
        for (mount, outcome) in EarlyMounts.mountAll() {
            if case .failed(let reason) = outcome { problems.append("cannot mount \(mount.type) on \(mount.target): \(reason)") }
        }
        if descriptorsMissing { Self.nullStandardDescriptors() }
        setenv("PATH", GuestLayout.path, 1)
        setenv("HOME", "/root", 0)
        // The kernel gives init /dev/console as it stands at boot: nothing, or
        // the VT, when the console asked for (hvc0) comes from a module.
        let onKernelConsole = descriptorsMissing || Self.link("/proc/self/fd/1") == "/dev/console"
        let modules = loadModules()
        if onKernelConsole { attachConsole() }
        logger.notice("sovnet-init \(version) starting (kernel \(KernelModules.release))")
        for problem in problems + modules.problems { logger.warning("\(problem)") }
        if !modules.loaded.isEmpty { logger.info("modules loaded: \(modules.loaded.joined(separator: " "))") }
        if !modules.absent.isEmpty { logger.info("not in this kernel: \(modules.absent.joined(separator: " "))") }
        setHostName()
        bringUpLoopback()
        if sovnet_disable_ctrl_alt_del() != 0 { logger.debug("Ctrl-Alt-Del stays the kernel's: \(Self.lastError)") }
        powerButton = PowerButton()
        if let powerButton { logger.info("power button: \(powerButton.device)") }
        loadServices()
    }

    /// What loading the modules came to.
    private struct ModuleReport {
        var loaded: [String] = []
        var absent: [String] = []
        var problems: [String] = []
    }

    /// Loads /etc/sovnet/modules, or the defaults when there is none.
    private func loadModules() -> ModuleReport {
        var report = ModuleReport()
        let lines = Self.readFile(GuestLayout.modules).map { text in
            text.split(separator: "\n").map { $0.trimmingSpaces }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        } ?? GuestLayout.defaultModules
        guard !lines.isEmpty else { return report }
        guard var modules = KernelModules() else {
            report.absent = ["/lib/modules/\(KernelModules.release) (every driver is built in, or none is there)"]
            return report
        }
        for line in lines {
            let words = line.split(separator: " ", maxSplits: 1)
            let name = String(words[0])
            let outcome = modules.load(name, parameters: words.count > 1 ? String(words[1]) : "")
            switch outcome {
            case .loaded: report.loaded.append(name)
            case .alreadyLoaded, .builtIn: break
            case .notFound: report.absent.append(name)
            case .failed: report.problems.append("module \(name): \(outcome)")
            }
        }
        return report
    }

    /// Makes /dev/console descriptors 0 to 2 again, once the console the
    /// kernel command line names (`console=hvc0`) is registered: its driver
    /// may have just been loaded, and its device appears a little later
    /// (seconds later, under emulation on a busy host): it waits up to 10 s.
    private func attachConsole() {
        let wanted = Self.readFile("/proc/cmdline")?.split(separator: " ")
            .last { $0.hasPrefix("console=") }
            .map { String($0.dropFirst("console=".count).prefix { $0 != "," }).trimmingSpaces }
        for _ in 0..<100 {
            let registered = Self.readFile("/proc/consoles")?.split(separator: "\n").map { $0.prefix { $0 != " " } } ?? []
            if wanted == nil || registered.contains(where: { $0 == wanted! }) { break }
            usleep(100_000)
        }
        let fd = systemOpen("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { return }
        for target in Int32(0)...2 { dup2(fd, target) }
        if fd > 2 { close(fd) }
    }

    private func setHostName() {
        guard let text = Self.readFile(GuestLayout.hostname),
              let name = text.split(separator: "\n").first.map({ $0.trimmingSpaces }), !name.isEmpty else { return }
        if sethostname(name, name.utf8.count) == 0 {
            logger.info("host name \(name)")
        } else {
            logger.warning("cannot set the host name \(name): \(Self.lastError)")
        }
    }

    private func bringUpLoopback() {
        guard let index = RouteNetlink.interfaceIndex("lo") else {
            logger.warning("cannot bring up lo: no lo interface")
            return
        }
        do throws(LinkError) {
            try RouteNetlink().setLinkUp(index: index, mtu: nil)
        } catch {
            logger.warning("cannot bring up lo: \(error)")
        }
    }

    private func loadServices() {
        var list: [ServiceDefinition] = []
        let forwardText = Self.readFile(GuestLayout.forwardArguments)?.trimmingSpaces
        if forwardText != "none" {
            do throws(ServiceListError) {
                let arguments = try forwardText.map { (line) throws(ServiceListError) in try ServiceList.split(line) }
                    ?? GuestLayout.defaultForwardArguments
                list.append(ServiceDefinition(arguments: [OwnProgram.path, "forward"] + arguments))
            } catch {
                logger.error("\(GuestLayout.forwardArguments): \(error); sovnet forward not started")
            }
        }
        let ungated = list.count
        if let text = Self.readFile(GuestLayout.services) {
            do throws(ServiceListError) {
                list += try ServiceList.parse(text)
            } catch {
                logger.error("\(GuestLayout.services): \(error); no services started")
            }
        }
        services = list
        supervisor = ServiceSupervisor(count: list.count, ungated: ungated)
        logger.notice("\(ungated == 1 ? "sovnet forward and " : "")\(list.count - ungated) service(s) from \(GuestLayout.services)")
    }

    // MARK: Supervision

    private func supervise() {
        perform(supervisor.start(now: .now))
        if supervisor.awaitingNetwork, Self.hasDefaultRoute() { perform(supervisor.networkReady(now: .now)) }
        while true {
            var descriptors = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            if let powerButton { descriptors.append(pollfd(fd: powerButton.descriptor, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout())
            if ready < 0, errno != EINTR { logger.error("poll: \(Self.lastError)") }
            drainSignals()
            reap()
            let now = MonotonicInstant.now
            if descriptors.count > 1, descriptors[1].revents != 0, powerButton?.pressed() == true {
                logger.notice("power button pressed")
                request(.powerOff)
            }
            if powerButton == nil, !supervisor.isShuttingDown, now >= nextButtonScan {
                powerButton = PowerButton()
                nextButtonScan = now + .seconds(5)
                if let powerButton { logger.info("power button: \(powerButton.device)") }
            }
            if supervisor.awaitingNetwork, Self.hasDefaultRoute() {
                logger.info("network up: starting services")
                perform(supervisor.networkReady(now: now))
            }
            if let deadline = supervisor.nextDeadline, now >= deadline { perform(supervisor.tick(now: now)) }
            if let shutdown, !supervisor.isShuttingDown {
                logger.notice(shutdown == .powerOff ? "powering off" : "restarting")
                shutdownDeadline = now + supervisor.policy.stopGrace * (services.count + 1)
                perform(supervisor.shutDown(now: now))
            }
            if allStopped { return }
            if let deadline = shutdownDeadline, now >= deadline {
                logger.warning("services did not stop in time")
                return
            }
        }
    }

    /// Milliseconds until something is due.
    private func timeout() -> Int32 {
        var deadlines = [supervisor.nextDeadline, shutdownDeadline].compactMap { $0 }
        if supervisor.awaitingNetwork { deadlines.append(.now + .milliseconds(100)) }
        if powerButton == nil { deadlines.append(nextButtonScan) }
        return PollTimeout.milliseconds(until: deadlines.min())
    }

    private func drainSignals() {
        var numbers = [UInt8](repeating: 0, count: 64)
        while true {
            let count = numbers.withUnsafeMutableBytes { read(signals, $0.baseAddress, $0.count) }
            guard count > 0 else { return }
            for number in numbers[..<count].map(Int32.init) {
                switch number {
                case SIGCHLD: continue
                case SIGINT: request(.restart)
                case SIGHUP: logger.info("SIGHUP: nothing to reload")
                default: request(.powerOff)
                }
            }
        }
    }

    private func request(_ kind: Shutdown) {
        if shutdown == nil { shutdown = kind }
    }

    /// Reaps every child that has ended: services, and orphans left to PID 1.
    private func reap() {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            let actions = supervisor.exited(pid: pid, exit: ProcessExit(waitStatus: status), now: .now)
            if actions.isEmpty {
                orphansReaped += 1
                logger.debug("reaped orphan \(pid) (\(ProcessExit(waitStatus: status)))")
            }
            perform(actions)
        }
    }

    /// Carries out the supervisor's actions.
    private func perform(_ actions: [SupervisorAction]) {
        for action in actions {
            switch action {
            case .start(let index):
                let pid = Self.spawn(services[index])
                if pid > 0 {
                    perform(supervisor.started(index, pid: pid, now: .now))
                } else {
                    perform(supervisor.failedToStart(index, reason: Self.lastError, now: .now))
                }
            case .signal(_, let pid, let signal):
                if kill(-pid, signal) != 0 { kill(pid, signal) }
            case .event(let event):
                log(event)
            case .finished:
                allStopped = true
            }
        }
    }

    private func log(_ event: SupervisorEvent) {
        func name(_ index: Int) -> String { index == 0 && services.first?.arguments.dropFirst().first == "forward"
            ? "sovnet forward" : "service \(index) (\(services[index].name))" }
        switch event {
        case .started(let index, let pid):
            logger.info("started \(name(index)), pid \(pid)")
        case .failedToStart(let index, let reason, let delay):
            logger.error("cannot start \(name(index)): \(reason); retrying in \(delay.secondsText)")
        case .exited(let index, let pid, let exit, let ranFor, let restartIn):
            let restart = restartIn.map { "; restarting in \($0.secondsText)" } ?? ""
            logger.notice("\(name(index)) (pid \(pid)) exited with \(exit) after \(ranFor.secondsText)\(restart)")
        case .networkWaitExpired(let wait):
            logger.warning("no default route after \(wait.secondsText): starting services anyway")
        case .stopping(let index, let pid):
            logger.notice("stopping \(name(index)) (pid \(pid))")
        case .killing(let index, let pid):
            logger.warning("\(name(index)) (pid \(pid)) ignored SIGTERM: killing it")
        }
    }

    // MARK: The end

    /// Ends what still runs, syncs, and powers off or restarts.
    private func finish() -> Never {
        kill(-1, SIGTERM)
        let deadline = MonotonicInstant.now + .seconds(3)
        while MonotonicInstant.now < deadline, Self.hasChildren() {
            reap()
            usleep(50_000)
        }
        kill(-1, SIGKILL)
        reap()
        sync()
        if systemMount(nil, "/", nil, UInt(MS_REMOUNT | MS_RDONLY), nil) != 0 {
            logger.debug("/ stays writable: \(Self.lastError)")
        }
        sync()
        logger.notice(shutdown == .restart ? "restarting now" : "powering off now (reaped \(orphansReaped) orphans)")
        _ = shutdown == .restart ? sovnet_restart() : sovnet_power_off()
        logger.critical("reboot(2) failed: \(Self.lastError)")
        _exit(0)
    }

    // MARK: Helpers

    static func spawn(_ service: ServiceDefinition) -> Int32 {
        var environment: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if !service.environment.contains(where: { text.hasPrefix($0.name + "=") }) { environment.append(text) }
            index += 1
        }
        environment += service.environment.map { "\($0.name)=\($0.value)" }
        let argv = service.arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        return sovnet_spawn_service(service.arguments[0], argv, envp)
    }

    /// Whether the routing table has a default route (`/proc/net/route`).
    static func hasDefaultRoute() -> Bool {
        guard let table = readFile("/proc/net/route") else { return false }
        return table.split(separator: "\n").dropFirst().contains { line in
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            return fields.count > 2 && fields[1] == "00000000"
        }
    }

    static func hasChildren() -> Bool {
        var info = siginfo_t()
        return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0
    }

    /// Where a symbolic link points, or nil.
    static func link(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return nil }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Points descriptors 0 to 2 (the shim's placeholders, where the kernel
    /// gave init none) at /dev/null until the console can be opened.
    static func nullStandardDescriptors() {
        let null = systemOpen("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { return }
        for fd in Int32(0)...2 { dup2(null, fd) }
        close(null)
    }

    public static func readFile(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static var lastError: String { String(cString: strerror(errno)) }
}

extension Substring {
    /// Without leading and trailing white space.
    var trimmingSpaces: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

extension String {
    var trimmingSpaces: String { self[...].trimmingSpaces }
}
