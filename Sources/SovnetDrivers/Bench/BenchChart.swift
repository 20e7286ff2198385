// `sovnet bench --chart FILE.svg`: a picture of a report that reads at a
// glance. Top: throughput, a group of bars per MTU, two bars per stack
// (guest→host solid, host→guest pale), labelled with their Gbit/s. Middle:
// one panel per latency probe, each stack's p50, p90, p99 and p99.9 joined
// by a line and labelled, the percentile axis spaced by 1/(1-p) and the
// microseconds on one logarithmic axis shared by the three panels, so that
// they compare. Bottom: new connections per second, the time to the guest's
// address, and the peak memory of each side, as labelled bars. All for the
// smallest MTU measured but the throughput. Plain SVG, no script.
import Foundation

/// Draws a report as SVG.
public enum BenchChart {
    static let colours = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#57606a"]
    static let width = 980.0
    static let height = 1010.0

    public static func svg(_ report: BenchReport) -> String {
        let stacks = report.results.map(\.stack).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        func colour(_ stack: String) -> String { colours[(stacks.firstIndex(of: stack) ?? 0) % colours.count] }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" \
            font-family="Helvetica, Arial, sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="20" y="28" font-size="17" font-weight="bold">sovnet bench: \(escape(report.machine))</text>
            <text x="20" y="46" fill="#57606a">\(escape(report.date)); throughput: median of \(report.runs) run(s) of \
            \(report.seconds) s, one TCP stream; latency: \(report.samples) samples per probe</text>

            """
        out += throughput(report, stacks: stacks, colour: colour)
        out += latency(report, stacks: stacks, colour: colour)
        out += figures(report, stacks: stacks, colour: colour)
        for (index, stack) in stacks.enumerated() {
            let x = 20 + Double(index) * 170
            out += "<rect x=\"\(x)\" y=\"\(height - 26)\" width=\"14\" height=\"14\" fill=\"\(colour(stack))\"/>"
                + "<text x=\"\(x + 20)\" y=\"\(height - 15)\">\(escape(stack))</text>\n"
        }
        return out + "</svg>\n"
    }

    /// Bars of Gbit/s, grouped by MTU.
    static func throughput(_ report: BenchReport, stacks: [String], colour: (String) -> String) -> String {
        let top = 88.0, height = 245.0, left = 60.0, right = width - 20
        let mtus = report.results.map(\.mtu).reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }
        let values = report.results.flatMap { [$0.guestToHostMedian, $0.hostToGuestMedian].compactMap { $0 } }
        let scale = niceMaximum(values.max() ?? 1)
        var out = "<text x=\"\(left)\" y=\"\(top - 18)\" font-weight=\"bold\">Throughput, Gbit/s (solid: guest→host, pale: host→guest)</text>\n"
        for step in 0...4 {
            let value = scale * Double(step) / 4
            let y = top + height - height * Double(step) / 4
            out += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(right)\" y2=\"\(y)\" stroke=\"#d0d7de\"/>"
                + "<text x=\"\(left - 6)\" y=\"\(y + 4)\" text-anchor=\"end\">\(format(value))</text>\n"
        }
        let groupWidth = (right - left) / Double(max(mtus.count, 1))
        let barWidth = min(36, groupWidth / Double(max(stacks.count, 1) * 2 + 1))
        for (group, mtu) in mtus.enumerated() {
            let groupLeft = left + Double(group) * groupWidth
            let usedWidth = barWidth * Double(stacks.count * 2)
            var x = groupLeft + (groupWidth - usedWidth) / 2
            for stack in stacks {
                let result = report.results.first { $0.stack == stack && $0.mtu == mtu }
                for (value, opacity) in [(result?.guestToHostMedian, "1"), (result?.hostToGuestMedian, "0.45")] {
                    if let value {
                        let barHeight = height * value / scale
                        out += "<rect x=\"\(x)\" y=\"\(top + height - barHeight)\" width=\"\(barWidth - 2)\" height=\"\(barHeight)\" "
                            + "fill=\"\(colour(stack))\" fill-opacity=\"\(opacity)\"><title>\(escape(stack)) MTU \(mtu): \(format(value)) Gbit/s</title></rect>"
                            + "<text x=\"\(x + barWidth / 2 - 1)\" y=\"\(top + height - barHeight - 4)\" text-anchor=\"middle\" "
                            + "font-size=\"10\">\(format(value))</text>\n"
                    }
                    x += barWidth
                }
            }
            out += "<text x=\"\(groupLeft + groupWidth / 2)\" y=\"\(top + height + 18)\" text-anchor=\"middle\">MTU \(mtu)</text>\n"
        }
        return out
    }

    /// Percentile lines per probe, at the smallest MTU.
    static func latency(_ report: BenchReport, stacks: [String], colour: (String) -> String) -> String {
        let mtu = report.results.map(\.mtu).min() ?? 1500
        let probes: [(String, (BenchResult) -> LatencySummary?)] = [
            ("ICMP echo to the gateway", { $0.icmp }), ("UDP echo", { $0.udp }), ("TCP request/response", { $0.tcp }),
        ]
        let top = 400.0, height = 240.0, gap = 30.0
        let panelWidth = (width - 80 - gap * Double(probes.count - 1)) / Double(probes.count)
        var out = "<text x=\"60\" y=\"\(top - 24)\" font-weight=\"bold\">Latency in µs at MTU \(mtu), by percentile "
            + "(logarithmic)</text>\n"
        let percentiles = [50.0, 90, 99, 99.9]
        let positions = percentiles.map { log10(1 / (1 - $0 / 100)) }
        func summaries(_ pick: (BenchResult) -> LatencySummary?) -> [(String, LatencySummary)] {
            stacks.compactMap { stack in
                report.results.first { $0.stack == stack && $0.mtu == mtu }.flatMap(pick).map { (stack, $0) }
            }.filter { $0.1.samples > 0 }
        }
        // One scale for every panel, so that a probe's line compares with another's.
        let values = probes.flatMap { summaries($0.1) }.flatMap { [$0.1.p50, $0.1.p90, $0.1.p99, $0.1.p999] }.filter { $0 > 0 }
        let low = pow(10, floor(log10(values.min() ?? 1)))
        let high = pow(10, ceil(log10(max(values.max() ?? 10, low * 10))))
        for (index, (title, pick)) in probes.enumerated() {
            let left = 60 + Double(index) * (panelWidth + gap)
            let summaries = summaries(pick)
            func y(_ value: Double) -> Double {
                top + height - height * (log10(max(value, low)) - log10(low)) / (log10(high) - log10(low))
            }
            func x(_ position: Double) -> Double { left + 10 + (panelWidth - 20) * position / positions.last! }
            out += "<text x=\"\(left)\" y=\"\(top - 6)\">\(escape(title))</text>\n"
            out += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(panelWidth)\" height=\"\(height)\" fill=\"none\" stroke=\"#d0d7de\"/>\n"
            var decade = low
            while decade <= high * 1.0001 {
                out += "<line x1=\"\(left)\" y1=\"\(y(decade))\" x2=\"\(left + panelWidth)\" y2=\"\(y(decade))\" stroke=\"#eaeef2\"/>"
                    + "<text x=\"\(left - 4)\" y=\"\(y(decade) + 4)\" text-anchor=\"end\" font-size=\"10\">\(format(decade))</text>\n"
                decade *= 10
            }
            for (percentile, position) in zip(percentiles, positions) {
                out += "<text x=\"\(x(position))\" y=\"\(top + height + 14)\" text-anchor=\"middle\" font-size=\"10\">p\(format(percentile))</text>\n"
            }
            for (stack, summary) in summaries {
                let points = zip(positions, [summary.p50, summary.p90, summary.p99, summary.p999]).map { (x($0), y($1)) }
                out += "<polyline fill=\"none\" stroke=\"\(colour(stack))\" stroke-width=\"2\" points=\""
                    + points.map { "\(format($0.0)),\(format($0.1))" }.joined(separator: " ") + "\"/>\n"
                for (point, value) in zip(points, [summary.p50, summary.p90, summary.p99, summary.p999]) {
                    out += "<circle cx=\"\(format(point.0))\" cy=\"\(format(point.1))\" r=\"3\" fill=\"\(colour(stack))\">"
                        + "<title>\(escape(stack)): \(format(value)) µs</title></circle>"
                        + "<text x=\"\(format(point.0 + 4))\" y=\"\(format(point.1 - 5))\" font-size=\"9\" "
                        + "fill=\"\(colour(stack))\">\(format(value))</text>\n"
                }
            }
        }
        return out
    }

    /// Labelled bars of the other figures, at the smallest MTU: new
    /// connections per second, the time to the guest's address, and the
    /// peak memory of the host side (solid) and the guest side (pale).
    static func figures(_ report: BenchReport, stacks: [String], colour: (String) -> String) -> String {
        let mtu = report.results.map(\.mtu).min() ?? 1500
        let results = stacks.compactMap { stack in report.results.first { $0.stack == stack && $0.mtu == mtu } }
        let top = 720.0, gap = 30.0
        let panelWidth = (width - 80 - gap * 2) / 3
        var out = "<text x=\"60\" y=\"\(top - 24)\" font-weight=\"bold\">At MTU \(mtu)</text>\n"
        let panels: [(String, [(String, Double?, String)])] = [
            ("New connections per second", results.map { ($0.stack, $0.connectionsPerSecond, "1") }),
            ("Address after start, ms", results.map { ($0.stack, $0.addressMilliseconds, "1") }),
            ("Peak memory, MB (solid: host side, pale: guest)",
             results.flatMap { [($0.stack, $0.hostPeakMB, "1"), ($0.stack, $0.guestPeakMB, "0.45")] }),
        ]
        for (index, (title, values)) in panels.enumerated() {
            let left = 60 + Double(index) * (panelWidth + gap)
            out += bars(title, values, left: left, top: top, width: panelWidth, height: 200, colour: colour)
        }
        return out
    }

    /// One panel of labelled bars from 0, on a scale of 1, 2 or 5 times a power of ten.
    static func bars(_ title: String, _ bars: [(stack: String, value: Double?, opacity: String)], left: Double, top: Double,
                     width: Double, height: Double, colour: (String) -> String) -> String {
        let scale = niceMaximum(bars.compactMap(\.value).max() ?? 1)
        var out = "<text x=\"\(left)\" y=\"\(top - 6)\">\(escape(title))</text>\n"
            + "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(width)\" height=\"\(height)\" fill=\"none\" stroke=\"#d0d7de\"/>\n"
            + "<text x=\"\(left - 4)\" y=\"\(top + 4)\" text-anchor=\"end\" font-size=\"10\">\(format(scale))</text>"
            + "<text x=\"\(left - 4)\" y=\"\(top + height)\" text-anchor=\"end\" font-size=\"10\">0</text>\n"
        let barWidth = min(40, (width - 20) / Double(max(bars.count, 1)))
        var x = left + (width - barWidth * Double(bars.count)) / 2
        for bar in bars {
            if let value = bar.value {
                let barHeight = height * value / scale
                out += "<rect x=\"\(format(x))\" y=\"\(format(top + height - barHeight))\" width=\"\(format(barWidth - 3))\" "
                    + "height=\"\(format(barHeight))\" fill=\"\(colour(bar.stack))\" fill-opacity=\"\(bar.opacity)\">"
                    + "<title>\(escape(bar.stack)): \(format(value))</title></rect>"
                    + "<text x=\"\(format(x + barWidth / 2 - 1))\" y=\"\(format(top + height - barHeight - 4))\" "
                    + "text-anchor=\"middle\" font-size=\"10\">\(format(value))</text>\n"
            }
            x += barWidth
        }
        return out
    }

    /// 1, 2 or 5 times a power of ten, at least `value`.
    static func niceMaximum(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let power = pow(10, floor(log10(value)))
        for factor in [1.0, 2, 5, 10] where factor * power >= value { return factor * power }
        return 10 * power
    }

    static func format(_ value: Double) -> String {
        if value >= 100 || value == value.rounded() { return String(Int(value.rounded())) }
        return String(format: value >= 10 ? "%.1f" : "%.2f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
