// `tailscale ping` from the host's own tailscaled to the guest's tailnet
// address: each answer is a line like
//   pong from phone-vm (100.101.102.103) via 203.0.113.7:41641 in 12ms
//   pong from phone-vm (100.101.102.103) via DERP(fra) in 48ms
// (a direct path, or relayed through a DERP region). The verdict counts the
// pongs and reports the last path and the round-trip times.

/// What `tailscale ping` found.
public struct TailscalePingReport: Codable, Sendable, Equatable {
    public var address: String
    public var pongs: Int
    /// `direct` or `DERP`.
    public var path: String?
    /// The endpoint (`IP:port`) or DERP region of the last pong.
    public var via: String?
    public var milliseconds: [Double]
    public var error: String?

    /// Reads `tailscale ping` output.
    public static func parse(_ output: String, address: String) -> TailscalePingReport {
        var report = TailscalePingReport(address: address, pongs: 0, milliseconds: [])
        for line in output.split(whereSeparator: \.isNewline) where line.hasPrefix("pong from ") {
            guard let viaRange = line.range(of: " via "), let inRange = line.range(of: " in ", range: viaRange.upperBound..<line.endIndex)
            else { continue }
            let via = String(line[viaRange.upperBound..<inRange.lowerBound])
            let time = line[inRange.upperBound...].trimmingCharacters(in: .whitespaces)
            guard time.hasSuffix("ms"), let milliseconds = Double(time.dropLast(2)) else { continue }
            report.pongs += 1
            report.milliseconds.append(milliseconds)
            if via.hasPrefix("DERP(") {
                report.path = "DERP"
                report.via = String(via.dropFirst(5).dropLast())
            } else {
                report.path = "direct"
                report.via = via
            }
        }
        return report
    }

    public var verdict: (ok: Bool, detail: String) {
        if let error { return (false, error) }
        guard pongs > 0, let path, let via else { return (false, "no pong from \(address)") }
        let times = milliseconds.map { String(format: "%.0f", $0) }.joined(separator: "/")
        return (true, "\(pongs) pong(s), \(path == "DERP" ? "relayed via DERP(\(via))" : "direct via \(via)"), \(times) ms")
    }
}
