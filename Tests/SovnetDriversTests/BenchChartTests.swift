import Foundation
import Testing
@testable import SovnetDrivers

/// The chart of a bench report: every figure drawn and labelled, and the
/// latency panels on one scale, so that a probe compares with another.
@Suite struct BenchChartTests {
    static func latency(_ p50: Double, _ p99: Double, _ p999: Double) -> String {
        #"{"samples": 2000, "lost": 0, "p50": \#(p50), "p90": \#(p50 * 1.2), "p99": \#(p99), "p999": \#(p999), "mean": \#(p50), "max": \#(p999)}"#
    }

    static let report = """
        {"date": "2026-12-05T17:43:30Z", "machine": "2 × test CPU", "runs": 3, "samples": 2000, "seconds": 3, "results": [
          {"stack": "sovnet", "mtu": 1500, "guestToHost": [20.0], "hostToGuest": [17.8], "errors": [],
           "icmp": \(latency(100, 887, 1105)), "udp": \(latency(44, 59, 91)), "tcp": \(latency(43, 61, 90)),
           "connectionsPerSecond": 8417, "addressMilliseconds": 24.8, "leaseMilliseconds": 0.3,
           "hostPeakMB": 30.3, "guestPeakMB": 25.0},
          {"stack": "pasta", "mtu": 1500, "guestToHost": [9.5], "hostToGuest": [8.1], "errors": [],
           "icmp": \(latency(30, 60, 80)), "udp": \(latency(35, 50, 70)), "tcp": \(latency(40, 55, 75)),
           "connectionsPerSecond": 5120, "addressMilliseconds": 12.5, "hostPeakMB": 8.4}
        ]}
        """

    @Test func everyFigureIsDrawnAndLabelled() throws {
        let report = try JSONDecoder().decode(BenchReport.self, from: Data(Self.report.utf8))
        let svg = BenchChart.svg(report)
        for title in ["Throughput, Gbit/s", "ICMP echo to the gateway", "UDP echo", "TCP request/response",
                      "New connections per second", "Address after start, ms", "Peak memory, MB"] {
            #expect(svg.contains(title), "\(title)")
        }
        for label in [">8417</text>", ">5120</text>", ">24.8</text>", ">12.5</text>", ">30.3</text>", ">25</text>", ">8.40</text>",
                      ">44</text>", ">1105</text>", ">20</text>"] {
            #expect(svg.contains(label), "\(label)")
        }
        // The three latency panels share their decades, 10 to 10,000 µs in
        // each, though UDP and TCP alone would have needed only 10 to 100.
        for decade in ["10", "100", "1000"] {
            #expect(svg.components(separatedBy: "text-anchor=\"end\" font-size=\"10\">\(decade)</text>").count - 1 == 3, "\(decade)")
        }
        #expect(svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>\n"))
    }
}
