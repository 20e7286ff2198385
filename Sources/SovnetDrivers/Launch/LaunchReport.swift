// What `sovnet up` and `sovnet check` found: one result per step and check,
// each with a verdict and its figures, printed as a table or as JSON. The
// exit code is 0 when every check passed, 1 otherwise, and the first
// failure is named.
import Foundation

/// One step's or check's verdict.
public struct CheckResult: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable {
        case pass, fail, warn, skip
    }

    public var name: String
    public var verdict: Verdict
    public var detail: String
    /// Seconds the step took.
    public var seconds: Double?
    public var ping: PingReport?
    public var tcp: TCPCheckReport?
    public var tailscale: TailscaleStatus?
    public var tailscalePing: TailscalePingReport?

    public init(name: String, verdict: Verdict, detail: String, seconds: Double? = nil) {
        self.name = name
        self.verdict = verdict
        self.detail = detail
        self.seconds = seconds
    }
}

/// The whole launch or check run.
public struct LaunchReport: Codable, Sendable, Equatable {
    public var name: String
    public var kind: String
    public var guestAddress: String?
    public var guestMAC: String
    public var results: [CheckResult] = []

    public init(name: String, kind: String, guestMAC: String) {
        self.name = name
        self.kind = kind
        self.guestMAC = guestMAC
    }

    /// The first result that failed.
    public var firstFailure: CheckResult? { results.first { $0.verdict == .fail } }

    public var exitCode: Int32 { firstFailure == nil ? 0 : 1 }

    /// The summary table.
    public var table: String {
        let width = max(10, results.map(\.name.count).max() ?? 0)
        var out = "\("check".padding(toLength: width, withPad: " ", startingAt: 0))  verdict  figures\n"
        for result in results {
            out += "\(result.name.padding(toLength: width, withPad: " ", startingAt: 0))  "
                + "\(result.verdict.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0))  \(result.detail)\n"
        }
        if let failure = firstFailure {
            out += "\nFAILED: \(failure.name): \(failure.detail)\n"
        } else {
            out += "\n\(kind) guest \(name) is up" + (guestAddress.map { " at \($0)" } ?? "") + ": every check passed\n"
        }
        return out
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self) + "\n"
    }
}

extension PingReport {
    /// Like `ping`'s summary: `3 transmitted, 3 received, 0% loss, rtt min/avg/max = …`.
    public var summaryLine: String {
        if let error { return error }
        var line = "\(transmitted) transmitted, \(received) received, \(String(format: "%.0f", lossPercent))% loss"
        if let minimum, let average, let maximum {
            line += String(format: ", rtt min/avg/max = %.3f/%.3f/%.3f ms", minimum, average, maximum)
        }
        return line
    }
}
