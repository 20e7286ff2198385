// `sovnet bench`: for each MTU, every stack in a `BenchTopology` of its own,
// with servers on its host side's loopback (iperf3, TCP and UDP echo), all
// started first; then, from inside each guest and in turns across the
// stacks: the latency probes, the connection rate, and iperf3 both ways
// `runs` times (over IPv6 too, to the host's ::1, for stacks that carry
// it); the peak memory of each stack's processes last. Taking turns
// lets a shared machine's drift touch every stack alike. A stack that fails
// is reported and the run goes on. Every stage shows on the progress line.
import Foundation
import Glibc
import SovnetGuest

/// Runs the benchmark.
public final class Bench {
    public struct Options: Sendable {
        public var stacks: [BenchStack]
        public var mtus: [Int] = [1500, 65520]
        public var runs = 3
        public var seconds = 3
        public var samples = 5000
        public var iperf = "iperf3"

        public init(stacks: [BenchStack]) {
            self.stacks = stacks
        }
    }

    static let iperfPort: UInt16 = 5201
    static let iperfPortIPv6: UInt16 = 5202
    static let tcpEchoPort: UInt16 = 7101
    static let udpEchoPort: UInt16 = 7102

    private let options: Options
    private let progress: Progress
    private let directory: String

    public init(options: Options, progress: Progress = Progress()) {
        self.options = options
        self.progress = progress
        directory = NSTemporaryDirectory() + "sovnet-bench-\(getpid())"
    }

    /// Everything, stack by stack; the report.
    public func run() throws -> BenchReport {
        guard geteuid() == 0 else { throw LaunchError("sovnet bench needs root: it makes network namespaces and tap devices") }
        guard Executable.find(options.iperf) != nil else { throw LaunchError("\(options.iperf) is not installed (Debian: iperf3)") }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            progress.close()
        }
        var report = BenchReport(date: ISO8601DateFormatter().string(from: Date()), machine: Self.machine(),
                                 runs: options.runs, seconds: options.seconds, samples: options.samples)
        for mtu in options.mtus {
            report.results += measure(options.stacks, mtu: mtu)
        }
        return report
    }

    /// One stack under measurement: its namespaces, servers, processes and figures.
    private final class Subject {
        let stack: BenchStack
        let label: String
        var result: BenchResult
        var errors: [String] = []
        var topology: BenchTopology?
        var servers: [BenchEchoServers] = []
        var iperf: [ChildProcess] = []
        var running: RunningStack?

        init(stack: BenchStack, mtu: Int) {
            self.stack = stack
            label = "\(stack) MTU \(mtu)"
            result = BenchResult(stack: "\(stack)", mtu: mtu)
        }

        func stop() {
            running?.stop()
            iperf.forEach { $0.stop(SIGTERM, grace: 2) }
            servers.forEach { $0.stop() }
            topology?.close()
        }
    }

    /// Every stack at one MTU, each in namespaces of its own, all started
    /// first and then measured in turns, probe by probe and run by run, so
    /// that the machine's drift touches every stack alike.
    private func measure(_ stacks: [BenchStack], mtu: Int) -> [BenchResult] {
        let subjects = stacks.enumerated().map { index, stack in
            start(Subject(stack: stack, mtu: mtu), index: index, mtu: mtu)
        }
        defer { subjects.forEach { $0.stop() } }
        let live = subjects.filter { $0.running != nil }
        let samples = options.samples
        latencyProbe(live, "ICMP echo to the gateway", into: \.icmp) { gateway, _ in
            try BenchProbes.icmpEcho(gateway: gateway, samples: min(samples, 2000), deadline: .seconds(10))
        }
        latencyProbe(live, "UDP echo", into: \.udp) { _, host in
            try BenchProbes.udpEcho(host: host, port: Self.udpEchoPort, samples: samples, deadline: .seconds(10))
        }
        latencyProbe(live, "TCP request/response", into: \.tcp) { _, host in
            try BenchProbes.tcpRequestResponse(host: host, port: Self.tcpEchoPort, samples: samples, deadline: .seconds(10))
        }
        let dual = live.filter { $0.running?.hostAliasIPv6 != nil }
        for subject in dual {
            let (host, guest) = (subject.running!.hostAliasIPv6!, subject.topology!.guest)
            stage("\(subject.label): TCP request/response over IPv6", into: &subject.errors) {
                let summary = try NamespaceThread.run(in: guest) {
                    guard BenchStack.wait(seconds: 10, { InterfaceAddress.hasGlobalIPv6() }) else {
                        throw LaunchError("the guest got no IPv6 address within 10 s")
                    }
                    // A fresh address passes duplicate address detection before it can be used.
                    var lastError: Error?
                    for _ in 0..<30 {
                        do {
                            return try BenchProbes.tcpRequestResponse(host: host, port: Self.tcpEchoPort, samples: samples,
                                                                      deadline: .seconds(10))
                        } catch {
                            lastError = error
                            usleep(100_000)
                        }
                    }
                    throw lastError ?? LaunchError("no IPv6 connection")
                }
                subject.result.tcpIPv6 = summary
                return BenchReport.latency(summary)
            }
        }
        for subject in live {
            let (host, guest) = (subject.running!.hostAlias, subject.topology!.guest)
            stage("\(subject.label): new connections", into: &subject.errors) {
                let (rate, latency) = try NamespaceThread.run(in: guest) {
                    try BenchProbes.connectionRate(host: host, port: Self.tcpEchoPort, limit: 10_000, deadline: .seconds(3))
                }
                subject.result.connectionsPerSecond = rate
                subject.result.connection = latency
                return "\(BenchReport.number(rate, 0))/s"
            }
        }
        for run in 1...options.runs {
            for reverse in [false, true] {
                for subject in live {
                    let direction = reverse ? "host→guest" : "guest→host"
                    stage("\(subject.label): \(direction) run \(run)/\(options.runs)", into: &subject.errors) {
                        let rate = try throughput(topology: subject.topology!, host: subject.running!.hostAlias,
                                                  port: Self.iperfPort, reverse: reverse)
                        if reverse { subject.result.hostToGuest.append(rate) } else { subject.result.guestToHost.append(rate) }
                        return "\(BenchReport.number(rate, 2)) Gbit/s"
                    }
                }
                for subject in dual where subject.result.tcpIPv6 != nil {
                    let direction = reverse ? "host→guest" : "guest→host"
                    stage("\(subject.label): IPv6 \(direction) run \(run)/\(options.runs)", into: &subject.errors) {
                        let rate = try throughput(topology: subject.topology!, host: subject.running!.hostAliasIPv6!,
                                                  port: Self.iperfPortIPv6, reverse: reverse)
                        if reverse {
                            subject.result.hostToGuestIPv6 = (subject.result.hostToGuestIPv6 ?? []) + [rate]
                        } else {
                            subject.result.guestToHostIPv6 = (subject.result.guestToHostIPv6 ?? []) + [rate]
                        }
                        return "\(BenchReport.number(rate, 2)) Gbit/s"
                    }
                }
            }
        }
        for subject in live {
            let peaks = subject.running!.peakResidentBytes()
            subject.result.hostPeakMB = peaks.host.map { Double($0) / 1_048_576 }
            subject.result.guestPeakMB = peaks.guest.map { Double($0) / 1_048_576 }
            if subject.running!.host?.isRunning == false {
                subject.errors.append("the host side ended: \(subject.running!.host?.tail(3) ?? "")")
            }
        }
        return subjects.map { subject in
            var result = subject.result
            result.errors = subject.errors
            return result
        }
    }

    /// Runs one latency probe from every live subject's guest namespace in
    /// turn; the probe is given the stack's gateway and host addresses.
    private func latencyProbe(_ live: [Subject], _ name: String, into field: WritableKeyPath<BenchResult, LatencySummary?>,
                              _ probe: @escaping @Sendable (_ gateway: String, _ host: String) throws -> LatencySummary) {
        for subject in live {
            let (gateway, host) = (subject.running!.gateway, subject.running!.hostAlias)
            stage("\(subject.label): \(name)", into: &subject.errors) {
                let summary = try NamespaceThread.run(in: subject.topology!.guest) { try probe(gateway, host) }
                subject.result[keyPath: field] = summary
                return BenchReport.latency(summary)
            }
        }
    }

    /// Makes a subject's namespaces, starts its servers and its stack.
    private func start(_ subject: Subject, index: Int, mtu: Int) -> Subject {
        stage("\(subject.label): start", into: &subject.errors) {
            let topology = try BenchTopology(prefix: "svbench\(getpid() % 100_000)s\(index)")
            subject.topology = topology
            let running = try subject.stack.start(in: topology, mtu: mtu, directory: directory)
            subject.running = running
            let addresses = running.serverAddresses
            subject.servers = try NamespaceThread.run(in: topology.host) {
                try addresses.map { try BenchEchoServers(address: $0, tcpPort: Self.tcpEchoPort, udpPort: Self.udpEchoPort) }
            }
            for (address, port) in zip(addresses, [Self.iperfPort, Self.iperfPortIPv6]) {
                subject.iperf.append(try ChildProcess(topology.inNamespace(topology.host, [options.iperf, "-s", "-B", address,
                                                                                           "-p", "\(port)"]),
                                                      log: directory + "/iperf-server-\(index)-\(port).log"))
            }
            subject.result.addressMilliseconds = running.addressAfter?.milliseconds
            subject.result.leaseMilliseconds = running.leaseMilliseconds
            return running.addressAfter == nil ? "linked" : "address after \(BenchReport.number(subject.result.addressMilliseconds, 1)) ms"
        }
        return subject
    }

    /// One iperf3 run of `seconds`, a single stream; the receiver's Gbit/s.
    private func throughput(topology: BenchTopology, host: String, port: UInt16, reverse: Bool) throws -> Double {
        let log = directory + "/iperf-client-\(topology.guest).log"
        unlink(log)
        let client = try ChildProcess(topology.inNamespace(topology.guest, [options.iperf, "-c", host, "-p", "\(port)",
                                                                           "-t", "\(options.seconds)", "-J"] + (reverse ? ["-R"] : [])),
                                      log: log)
        guard let status = client.wait(seconds: Double(options.seconds) + 20) else {
            client.stop(SIGKILL)
            throw LaunchError("iperf3 did not finish")
        }
        let data = FileManager.default.contents(atPath: log) ?? Data()
        guard status == 0,
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let end = json["end"] as? [String: Any], let received = end["sum_received"] as? [String: Any],
              let bits = received["bits_per_second"] as? Double else {
            throw LaunchError("iperf3 failed (\(status)): \(String(decoding: data.suffix(300), as: UTF8.self))")
        }
        return bits / 1e9
    }

    /// Runs a stage on the progress line; its error is kept in `errors`.
    @discardableResult
    private func stage(_ name: String, into errors: inout [String], _ body: () throws -> String) -> Bool {
        progress.begin(name)
        do {
            progress.end(try body())
            return true
        } catch {
            progress.end("\(error)", ok: false)
            errors.append("\(name): \(error)")
            return false
        }
    }

    /// CPU model and count, kernel, for the report's first line.
    static func machine() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(ProcessInfo.processInfo.activeProcessorCount) × \(cpu), Linux \(KernelModules.release)"
    }
}
