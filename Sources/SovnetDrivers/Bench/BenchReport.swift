// What `sovnet bench` found, per stack and MTU: throughput each way (every
// run, and their median), the latency percentiles of each probe, the
// connection rate, how soon the guest had its address, the peak memory of
// each side, and throughput and TCP latency over IPv6 where the stack has it. Printed as tables, written as JSON, drawn by `BenchChart`.
import Foundation

/// One stack at one MTU.
public struct BenchResult: Codable, Sendable {
    public var stack: String
    public var mtu: Int
    /// Gbit/s of each run, guest to host and host to guest.
    public var guestToHost: [Double] = []
    public var hostToGuest: [Double] = []
    public var icmp: LatencySummary?
    public var udp: LatencySummary?
    public var tcp: LatencySummary?
    public var connectionsPerSecond: Double?
    public var connection: LatencySummary?
    /// From starting the stack to the guest's address, and the forwarder's DHCP exchange.
    public var addressMilliseconds: Double?
    public var leaseMilliseconds: Double?
    /// Peak resident set sizes (VmHWM) in MB.
    public var hostPeakMB: Double?
    public var guestPeakMB: Double?
    /// Over IPv6, for stacks that carry it (sovnet): Gbit/s of each run both
    /// ways, and TCP request/response, to the host's ::1 (absent from
    /// reports made before sovnet had IPv6, and for other stacks).
    public var guestToHostIPv6: [Double]?
    public var hostToGuestIPv6: [Double]?
    public var tcpIPv6: LatencySummary?
    /// Why part of the run failed, if it did.
    public var errors: [String] = []

    public init(stack: String, mtu: Int) {
        self.stack = stack
        self.mtu = mtu
    }

    public var guestToHostMedian: Double? { Self.median(guestToHost) }
    public var hostToGuestMedian: Double? { Self.median(hostToGuest) }

    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

/// Every result of a run, with how it was made.
public struct BenchReport: Codable, Sendable {
    public var date: String
    public var machine: String
    public var runs: Int
    public var seconds: Int
    public var samples: Int
    public var results: [BenchResult] = []

    /// The report as tables for a terminal.
    public var text: String {
        var out = "sovnet bench on \(machine), \(date): \(runs) run(s) of \(seconds) s per direction (median shown), "
            + "\(samples) samples per latency probe\n\n"
        out += Self.table(["stack", "MTU", "guest→host Gbit/s", "host→guest Gbit/s", "runs (g→h | h→g)"], results.map { result in
            [result.stack, "\(result.mtu)", Self.number(result.guestToHostMedian, 2), Self.number(result.hostToGuestMedian, 2),
             result.guestToHost.map { Self.number($0, 2) }.joined(separator: " ") + " | "
                + result.hostToGuest.map { Self.number($0, 2) }.joined(separator: " ")]
        })
        out += "\nlatency in µs (p50 / p90 / p99 / p99.9; mean)\n"
        out += Self.table(["stack", "MTU", "ICMP echo (gateway)", "UDP echo", "TCP request/response", "connections/s"], results.map { result in
            [result.stack, "\(result.mtu)", Self.latency(result.icmp), Self.latency(result.udp), Self.latency(result.tcp),
             Self.number(result.connectionsPerSecond, 0)]
        })
        out += "\n" + Self.table(["stack", "MTU", "address after start ms", "DHCP ms", "host peak MB", "guest peak MB"], results.map { result in
            [result.stack, "\(result.mtu)", Self.number(result.addressMilliseconds, 1), Self.number(result.leaseMilliseconds, 1),
             Self.number(result.hostPeakMB, 1), Self.number(result.guestPeakMB, 1)]
        })
        let ipv6 = results.filter { $0.guestToHostIPv6 != nil || $0.tcpIPv6 != nil }
        if !ipv6.isEmpty {
            out += "\nIPv6, to the host's ::1 (stacks that carry it)\n"
            out += Self.table(["stack", "MTU", "guest→host Gbit/s", "host→guest Gbit/s", "TCP request/response µs"], ipv6.map { result in
                [result.stack, "\(result.mtu)", Self.number(BenchResult.median(result.guestToHostIPv6 ?? []), 2),
                 Self.number(BenchResult.median(result.hostToGuestIPv6 ?? []), 2), Self.latency(result.tcpIPv6)]
            })
        }
        let problems = results.flatMap { result in result.errors.map { "\(result.stack) MTU \(result.mtu): \($0)" } }
        if !problems.isEmpty { out += "\nproblems:\n" + problems.map { "  " + $0 }.joined(separator: "\n") + "\n" }
        return out
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? "{}\n"
    }

    static func latency(_ summary: LatencySummary?) -> String {
        guard let summary, summary.samples > 0 else { return "-" }
        let lost = summary.lost > 0 ? " (\(summary.lost) lost)" : ""
        return [summary.p50, summary.p90, summary.p99, summary.p999].map { number($0, 0) }.joined(separator: "/")
            + "; \(number(summary.mean, 0))" + lost
    }

    static func number(_ value: Double?, _ digits: Int) -> String {
        guard let value else { return "-" }
        return String(format: "%.\(digits)f", value)
    }

    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}
