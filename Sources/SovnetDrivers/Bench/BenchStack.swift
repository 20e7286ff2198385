// The user-mode network stacks `sovnet bench` can measure, each started in
// a `BenchTopology`: its host side in `host`, its guest side (or the
// interface it makes) in `guest`. Each says where the guest reaches the
// host's 127.0.0.1 and which address its gateway answers pings on.
//
//   sovnet       sovnet proxy -listen unix://… in host; sovnet-guest forward
//                (what guest install puts in a guest; sovnet forward if it
//                was not built) in guest; over IPv6 too, fd00::254 being the
//                host's ::1. With a busy-poll window, both get --busy-poll;
//                with a guest program, it runs the guest side instead.
//   gvisor       gvproxy and gvforwarder, the same way (the user's binaries)
//   pasta        pasta --config-net --netns guest, run in host; the gateway
//                address is remapped to the host's loopback
//   slirp4netns  slirp4netns --configure, run in host; 10.0.2.2 is the
//                host's loopback and answers pings
//   kernel       the floor: no user-mode stack, the guest routed to the
//                host over a veth pair (10.78.0.2 → 10.78.0.1, fd78::2 →
//                fd78::1), the servers on the host's end of it
import Foundation
import Glibc

/// A stack to measure.
public enum BenchStack: Sendable, Equatable, CustomStringConvertible {
    /// `busyPoll`: microseconds for both sides' `--busy-poll`; nil, their
    /// default. `guestProgram`: the forwarder's binary (the Embedded build,
    /// scripts/build-guest-embedded); nil, the one beside `binary`.
    case sovnet(binary: String, busyPoll: Int? = nil, guestProgram: String? = nil)
    case gvisor(proxy: String, forwarder: String)
    case pasta
    case slirp4netns
    /// The kernel's own path, what every figure is measured against.
    case kernel

    public var description: String {
        switch self {
        case .sovnet(_, let busyPoll, let guestProgram):
            "sovnet" + (busyPoll.map { " --busy-poll \($0)" } ?? "") + (guestProgram.map { ", guest \($0)" } ?? "")
        case .gvisor: "gvisor-tap-vsock"
        case .pasta: "pasta"
        case .slirp4netns: "slirp4netns"
        case .kernel: "kernel"
        }
    }

    /// The programs it needs, for a clear error when one is missing.
    public var programs: [String] {
        switch self {
        case .sovnet(let binary, _, let guestProgram): [binary] + (guestProgram.map { [$0] } ?? [])
        case .gvisor(let proxy, let forwarder): [proxy, forwarder]
        case .pasta: ["pasta"]
        case .slirp4netns: ["slirp4netns"]
        case .kernel: []
        }
    }

    /// Starts the stack at `mtu` and waits until the guest has an address.
    func start(in topology: BenchTopology, mtu: Int, directory: String) throws -> RunningStack {
        for program in programs where Executable.find(program) == nil {
            throw LaunchError("\(description): \(program) is not installed")
        }
        let logName = String("\(self)-\(mtu)".map { "/ ,".contains($0) ? "-" : $0 })
        // The clock for "address after start" starts with the process that
        // gives the guest its address: the forwarder, pasta, slirp4netns.
        var started = ContinuousClock.now
        var running: RunningStack
        switch self {
        case .sovnet(let binary, _, _), .gvisor(let binary, _):
            let socket = directory + "/vm.sock"
            unlink(socket)
            var proxyArguments = [binary, "proxy", "-listen", "unix://\(socket)", "-mtu", "\(mtu)"]
            if case .gvisor(let proxy, _) = self { proxyArguments = [proxy, "-listen", "unix://\(socket)", "-mtu", "\(mtu)"] }
            let busyPoll: [String] = if case .sovnet(_, let window?, _) = self { ["--busy-poll", "\(window)"] } else { [] }
            proxyArguments += busyPoll
            let proxy = try ChildProcess(topology.inNamespace(topology.host, proxyArguments), log: directory + "/\(logName)-host.log")
            running = RunningStack(stack: self, hostAlias: "192.168.127.254", gateway: "192.168.127.1", host: proxy)
            if case .sovnet = self { running.hostAliasIPv6 = "fd00::254" }
            guard Self.wait(seconds: 10, { access(socket, F_OK) == 0 || !proxy.isRunning }), proxy.isRunning else {
                running.stop()
                throw LaunchError("\(description): the proxy did not listen: \(proxy.tail(5))")
            }
            var guestProgram = Executable.guestProgram(beside: binary)
            if case .sovnet(_, _, let chosen?) = self { guestProgram = chosen }
            var forwarderArguments = [guestProgram, "forward", "-url", "unix://\(socket)", "-iface", "tap0", "-mtu", "\(mtu)",
                                      "-stop-if-exist", "", "--resolv-conf", "none"] + busyPoll
            if case .gvisor(_, let forwarder) = self {
                forwarderArguments = [forwarder, "-url", "unix://\(socket)", "-iface", "tap0", "-mtu", "\(mtu)", "-stop-if-exist", ""]
            }
            started = ContinuousClock.now
            running.guest = try ChildProcess(topology.inNamespace(topology.guest, forwarderArguments), log: directory + "/\(logName)-guest.log")
        case .pasta:
            let pasta = try ChildProcess(topology.inNamespace(topology.host, [
                "pasta", "--foreground", "--quiet", "--runas", "0", "--config-net", "--ipv4-only", "--mtu", "\(mtu)",
                "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--netns", topology.guest,
            ]), log: directory + "/\(logName)-host.log")
            running = RunningStack(stack: self, hostAlias: BenchTopology.worldAddress, gateway: BenchTopology.worldAddress, host: pasta)
        case .slirp4netns:
            let slirp = try ChildProcess(topology.inNamespace(topology.host, [
                "slirp4netns", "--configure", "--mtu=\(mtu)", "--netns-type=path", "/run/netns/\(topology.guest)", "tap0",
            ]), log: directory + "/\(logName)-host.log")
            running = RunningStack(stack: self, hostAlias: "10.0.2.2", gateway: "10.0.2.2", host: slirp)
        case .kernel:
            try Self.link(topology, mtu: mtu)
            var floor = RunningStack(stack: self, hostAlias: Self.floorHost.v4, gateway: Self.floorHost.v4, host: nil)
            floor.hostAliasIPv6 = Self.floorHost.v6
            floor.serverAddresses = [Self.floorHost.v4, Self.floorHost.v6]
            return floor
        }
        let guest = topology.guest
        let gotAddress = Self.wait(seconds: 20) {
            (try? NamespaceThread.run(in: guest) { InterfaceAddress.hasIPv4(excludingLoopback: true) }) == true
                || running.host?.isRunning == false
        }
        guard gotAddress, running.host?.isRunning != false else {
            let log = (running.host?.tail(5) ?? "") + "\n" + (running.guest?.tail(5) ?? "")
            running.stop()
            throw LaunchError("\(description): the guest got no address within 20 s: \(log)")
        }
        running.addressAfter = ContinuousClock.now - started
        // sovnet forward logs its DHCP exchange just after applying the lease.
        if let log = running.guest?.log {
            _ = Self.wait(seconds: 1) { Self.leaseMilliseconds(inLog: log) != nil }
            running.leaseMilliseconds = Self.leaseMilliseconds(inLog: log)
        }
        return running
    }

    /// The host's end of the floor's veth pair.
    static let floorHost = (v4: "10.78.0.1", v6: "fd78::1")

    /// The floor: a veth pair from the guest's tap0 to the host namespace,
    /// addressed at once (no duplicate address detection to wait for), the
    /// guest's default routes through it.
    private static func link(_ topology: BenchTopology, mtu: Int) throws {
        try BenchTopology.run(["ip", "link", "add", "tap0", "netns", topology.guest, "mtu", "\(mtu)", "type", "veth",
                               "peer", "name", "svb-f0", "netns", topology.host, "mtu", "\(mtu)"])
        for (namespace, device, v4, v6) in [(topology.host, "svb-f0", floorHost.v4, floorHost.v6),
                                            (topology.guest, "tap0", "10.78.0.2", "fd78::2")] {
            try BenchTopology.run(["ip", "-n", namespace, "addr", "add", v4 + "/24", "dev", device])
            try BenchTopology.run(["ip", "-n", namespace, "addr", "add", v6 + "/64", "dev", device, "nodad"])
            try BenchTopology.run(["ip", "-n", namespace, "link", "set", device, "up"])
        }
        try BenchTopology.run(["ip", "-n", topology.guest, "route", "add", "default", "via", floorHost.v4])
        try BenchTopology.run(["ip", "-n", topology.guest, "-6", "route", "add", "default", "via", floorHost.v6])
    }

    /// The `in X ms` of sovnet forward's `lease obtained` line.
    static func leaseMilliseconds(inLog path: String) -> Double? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.contains("lease obtained: ") }),
              let range = line.range(of: #" in [0-9.]+ ms"#, options: .regularExpression) else { return nil }
        return Double(line[range].dropFirst(4).dropLast(3))
    }

    /// Polls `condition` every millisecond for up to `seconds`.
    static func wait(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }
}

/// A started stack.
struct RunningStack {
    let stack: BenchStack
    /// The address the guest reaches the host's 127.0.0.1 at.
    let hostAlias: String
    /// Where the servers listen in the host namespace: its loopback, which
    /// the stacks map an address to; the floor's veth end.
    var serverAddresses = ["127.0.0.1", "::1"]
    /// The address that answers the guest's pings.
    let gateway: String
    /// Where the guest reaches the host's ::1, for stacks that carry IPv6.
    var hostAliasIPv6: String?
    /// The host side's process (proxy, pasta, slirp4netns).
    var host: ChildProcess?
    /// The guest side's process (the forwarder), where there is one.
    var guest: ChildProcess?
    /// From starting the process that gives the guest its address to the
    /// guest's interface having one; nil for the floor (no such process).
    var addressAfter: Duration?
    /// The forwarder's own account of its DHCP exchange.
    var leaseMilliseconds: Double?

    init(stack: BenchStack, hostAlias: String, gateway: String, host: ChildProcess?) {
        self.stack = stack
        self.hostAlias = hostAlias
        self.gateway = gateway
        self.host = host
    }

    /// Peak resident set sizes in bytes (VmHWM), while the processes run.
    func peakResidentBytes() -> (host: Int?, guest: Int?) {
        (host.flatMap { ProcessMemory.peakResident(pid: $0.pid) }, guest.flatMap { ProcessMemory.peakResident(pid: $0.pid) })
    }

    mutating func stop() {
        guest?.stop(SIGTERM, grace: 5)
        host?.stop(SIGTERM, grace: 5)
        guest = nil
        host = nil
    }
}

/// Reads /proc/PID/status.
enum ProcessMemory {
    /// VmHWM: the peak resident set size, in bytes.
    static func peakResident(pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes * 1024
    }
}

/// The calling thread's network namespace's addresses.
enum InterfaceAddress {
    /// Whether an interface has a global IPv6 address (not link-local, not loopback).
    static func hasGlobalIPv6() -> Bool {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return false }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            if let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET6) {
                let first = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin6_addr) { ($0[0], $0[1]) }
                }
                if first.0 != 0, !(first.0 == 0xFE && first.1 & 0xC0 == 0x80) { return true }
            }
            entry = current.pointee.ifa_next
        }
        return false
    }

    /// Whether an interface other than lo has an IPv4 address.
    static func hasIPv4(excludingLoopback: Bool) -> Bool {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return false }
        defer { freeifaddrs(list) }
        var entry = list
        while let current = entry {
            if let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
               !excludingLoopback || String(cString: current.pointee.ifa_name) != "lo" {
                return true
            }
            entry = current.pointee.ifa_next
        }
        return false
    }
}
