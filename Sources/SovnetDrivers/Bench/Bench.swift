// `sovnet bench`: for each stack and MTU, a fresh `BenchTopology`, the
// servers on the host side's loopback (iperf3, TCP and UDP echo), the stack
// started, and then, from inside the guest: the latency probes, the
// connection rate, and iperf3 both ways `runs` times; the peak memory of
// the stack's processes last. A stack that fails is reported and the run
// goes on. Every stage shows on the progress line.
import Foundation
import Glibc

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
        for stack in options.stacks {
            for mtu in options.mtus {
                report.results.append(measure(stack, mtu: mtu))
            }
        }
        return report
    }

    /// One stack at one MTU, in namespaces of its own.
    private func measure(_ stack: BenchStack, mtu: Int) -> BenchResult {
        var result = BenchResult(stack: "\(stack)", mtu: mtu)
        var errors: [String] = []
        measure(stack, mtu: mtu, into: &result, errors: &errors)
        result.errors = errors
        return result
    }

    private func measure(_ stack: BenchStack, mtu: Int, into result: inout BenchResult, errors: inout [String]) {
        let label = "\(stack) MTU \(mtu)"
        let topology: BenchTopology
        do {
            topology = try BenchTopology(prefix: "svbench\(getpid() % 100_000)")
        } catch {
            errors.append("namespaces: \(error)")
            return
        }
        defer { topology.close() }
        var servers: BenchEchoServers?
        var iperf: ChildProcess?
        var running: RunningStack?
        defer {
            running?.stop()
            iperf?.stop(SIGTERM, grace: 2)
            servers?.stop()
        }
        guard stage("\(label): start", into: &errors, {
            servers = try NamespaceThread.run(in: topology.host) {
                try BenchEchoServers(tcpPort: Self.tcpEchoPort, udpPort: Self.udpEchoPort)
            }
            iperf = try ChildProcess(topology.inNamespace(topology.host, [options.iperf, "-s", "-B", "127.0.0.1", "-p", "\(Self.iperfPort)"]),
                                     log: directory + "/iperf-server.log")
            running = try stack.start(in: topology, mtu: mtu, directory: directory)
            result.addressMilliseconds = running!.addressAfter.milliseconds
            result.leaseMilliseconds = running!.leaseMilliseconds
            return "address after \(BenchReport.number(result.addressMilliseconds, 1)) ms"
        }), let stackRunning = running else { return }
        let (host, gateway, guest) = (stackRunning.hostAlias, stackRunning.gateway, topology.guest)
        let samples = options.samples
        stage("\(label): ICMP echo to \(gateway)", into: &errors) {
            result.icmp = try NamespaceThread.run(in: guest) {
                try BenchProbes.icmpEcho(gateway: gateway, samples: min(samples, 2000), deadline: .seconds(10))
            }
            return BenchReport.latency(result.icmp)
        }
        stage("\(label): UDP echo", into: &errors) {
            result.udp = try NamespaceThread.run(in: guest) {
                try BenchProbes.udpEcho(host: host, port: Self.udpEchoPort, samples: samples, deadline: .seconds(10))
            }
            return BenchReport.latency(result.udp)
        }
        stage("\(label): TCP request/response", into: &errors) {
            result.tcp = try NamespaceThread.run(in: guest) {
                try BenchProbes.tcpRequestResponse(host: host, port: Self.tcpEchoPort, samples: samples, deadline: .seconds(10))
            }
            return BenchReport.latency(result.tcp)
        }
        stage("\(label): new connections", into: &errors) {
            let (rate, latency) = try NamespaceThread.run(in: guest) {
                try BenchProbes.connectionRate(host: host, port: Self.tcpEchoPort, limit: 10_000, deadline: .seconds(3))
            }
            result.connectionsPerSecond = rate
            result.connection = latency
            return "\(BenchReport.number(rate, 0))/s"
        }
        for run in 1...options.runs {
            for reverse in [false, true] {
                let direction = reverse ? "host→guest" : "guest→host"
                stage("\(label): \(direction) run \(run)/\(options.runs)", into: &errors) {
                    let rate = try throughput(topology: topology, host: host, reverse: reverse)
                    if reverse { result.hostToGuest.append(rate) } else { result.guestToHost.append(rate) }
                    return "\(BenchReport.number(rate, 2)) Gbit/s"
                }
            }
        }
        let peaks = stackRunning.peakResidentBytes()
        result.hostPeakMB = peaks.host.map { Double($0) / 1_048_576 }
        result.guestPeakMB = peaks.guest.map { Double($0) / 1_048_576 }
        if stackRunning.host?.isRunning == false { errors.append("the host side ended: \(stackRunning.host?.tail(3) ?? "")") }
    }

    /// One iperf3 run of `seconds`, a single stream; the receiver's Gbit/s.
    private func throughput(topology: BenchTopology, host: String, reverse: Bool) throws -> Double {
        let log = directory + "/iperf-client.log"
        unlink(log)
        let client = try ChildProcess(topology.inNamespace(topology.guest, [options.iperf, "-c", host, "-p", "\(Self.iperfPort)",
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
