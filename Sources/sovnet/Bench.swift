import ArgumentParser
import SovnetGuestCommands
import Foundation
import SovnetDrivers
import SovnetLink

/// `sovnet bench`: throughput, latency, connection rate, lease time and
/// memory through the stack, side by side with other stacks.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure latency and throughput through the stack (root; makes and removes its own namespaces).",
        discussion: """
            A guest namespace runs sovnet forward, another runs sovnet proxy with iperf3 and echo servers on \
            its 127.0.0.1, reached from the guest through the host alias; a third is the only place the host \
            side's route leads to, so nothing leaves the machine. --compare runs the same against pasta and \
            slirp4netns, --gvproxy/--gvforwarder against gvisor-tap-vsock. Every run also measures the \
            floor, "kernel": the guest namespace routed to the host's over a veth pair, no user-mode stack. \
            See benchmarks/README.md.
            """
    )

    @Option(name: .customLong("mtu"), help: "MTUs to measure at, comma-separated.")
    var mtu = "1500,65520"

    @Option(name: .customLong("runs"), help: "iperf3 runs per direction (the median is reported).")
    var runs = 3

    @Option(name: .customLong("time"), help: "Seconds per iperf3 run.")
    var seconds = 3

    @Option(name: .customLong("samples"), help: "Exchanges per latency probe (ICMP at most 2000).")
    var samples = 5000

    @Option(name: .customLong("compare"), help: "Other stacks to measure the same way: pasta, slirp4netns (comma-separated).")
    var compare: String?

    @Option(name: .customLong("busy-poll"),
            help: ArgumentHelp("Measure sovnet once per --busy-poll window given to its proxy and forwarder (comma-separated; "
                               + "default: theirs).", valueName: "microseconds"))
    var busyPoll: String?

    @Option(name: .customLong("guest-program"),
            help: ArgumentHelp("Measure sovnet once more with each of these as the guest side (comma-separated), such as "
                               + "the Embedded build of scripts/build-guest-embedded.", valueName: "path"),
            completion: .file())
    var guestProgram: String?

    @Option(name: .customLong("gvproxy"), help: "gvisor-tap-vsock's gvproxy, to measure with --gvforwarder.", completion: .file())
    var gvproxy: String?

    @Option(name: .customLong("gvforwarder"), help: "gvisor-tap-vsock's gvforwarder, to measure with --gvproxy.", completion: .file())
    var gvforwarder: String?

    @Option(name: .customLong("json"), help: "Write the results as JSON to this file.", completion: .file())
    var json: String?

    @Option(name: .customLong("chart"), help: "Draw the figures to this SVG file.", completion: .file())
    var chart: String?

    @Option(name: .customLong("from"), help: "Measure nothing: print and draw the report of an earlier --json file.",
            completion: .file(extensions: ["json"]))
    var from: String?

    func validate() throws {
        guard !mtus.isEmpty, mtus.allSatisfy({ (576...65520).contains($0) }) else {
            throw ValidationError("--mtu wants MTUs from 576 to 65520, comma-separated")
        }
        guard (1...20).contains(runs), (1...60).contains(seconds), (10...1_000_000).contains(samples) else {
            throw ValidationError("--runs 1-20, --time 1-60 and --samples 10-1000000")
        }
        if let busyPoll, busyPollWindows.count != busyPoll.split(separator: ",", omittingEmptySubsequences: false).count
            || !busyPollWindows.allSatisfy(BusyPoll.allowedMicroseconds.contains) {
            throw ValidationError("--busy-poll wants windows of 0 to 10000 microseconds, comma-separated")
        }
        if (gvproxy == nil) != (gvforwarder == nil) { throw ValidationError("--gvproxy and --gvforwarder go together") }
        for program in guestPrograms where access(program, X_OK) != 0 {
            throw ValidationError("--guest-program \(program) is not an executable file")
        }
        for name in compared where !["pasta", "slirp4netns"].contains(name) {
            throw ValidationError("--compare knows pasta and slirp4netns, not '\(name)'")
        }
    }

    var mtus: [Int] { mtu.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var busyPollWindows: [Int] {
        busyPoll?.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? []
    }
    var guestPrograms: [String] { guestProgram?.split(separator: ",").map(String.init) ?? [] }
    var compared: [String] { compare?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [] }

    func run() throws {
        if let json { try checkWritable(json, what: "--json") }
        if let chart { try checkWritable(chart, what: "--chart") }
        let report = try from.map(Self.load) ?? measure()
        print(report.text, terminator: "")
        if let json { try writeTextFile(json, report.json, what: "--json") }
        if let chart { try writeTextFile(chart, BenchChart.svg(report), what: "--chart") }
        if report.results.contains(where: { !$0.errors.isEmpty }) { throw ExitCode(1) }
    }

    /// A report `--json` wrote.
    static func load(_ path: String) throws -> BenchReport {
        let text = try readTextFile(path, what: "--from")
        do {
            return try JSONDecoder().decode(BenchReport.self, from: Data(text.utf8))
        } catch {
            throw RuntimeFailure("\(path) is not a report sovnet bench --json wrote: \(error)")
        }
    }

    func measure() throws -> BenchReport {
        let windows: [Int?] = busyPoll == nil ? [nil] : busyPollWindows
        let guests: [String?] = [nil] + guestPrograms
        var stacks: [BenchStack] = windows.flatMap { window in
            guests.map { .sovnet(binary: Executable.current, busyPoll: window, guestProgram: $0) }
        }
        if let gvproxy, let gvforwarder { stacks.append(.gvisor(proxy: gvproxy, forwarder: gvforwarder)) }
        for name in compared { stacks.append(name == "pasta" ? .pasta : .slirp4netns) }
        stacks.append(.kernel)
        var options = Bench.Options(stacks: stacks)
        options.mtus = mtus
        options.runs = runs
        options.seconds = seconds
        options.samples = samples
        do {
            return try Bench(options: options).run()
        } catch let error as LaunchError {
            throw RuntimeFailure(error.description)
        }
    }
}
