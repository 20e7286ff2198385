// The checks run once the guest has its lease, shared by `sovnet up` and
// `sovnet check`: ICMP echo from the gateway to the guest, a TCP handshake
// to each configured port (retried while the guest's services start), and
// Tailscale: the guest's own status, then `tailscale ping` from this host.
import Foundation

/// Runs the configured checks against a proxy's control API.
public struct ReachabilityChecks {
    public let configuration: LaunchConfiguration
    public let api: ControlClient
    public let runDirectory: String
    /// How long a refused port is retried (a service may still be starting).
    public var portWait: Duration = .seconds(10)

    public init(configuration: LaunchConfiguration, api: ControlClient, runDirectory: String) {
        self.configuration = configuration
        self.api = api
        self.runDirectory = runDirectory
    }

    struct PingRequest: Encodable {
        var address: String
        var count: Int
        var intervalMs: Int
        var timeoutMs: Int
    }

    struct TCPRequest: Encodable {
        var address: String
        var port: UInt16
        var timeoutMs: Int
    }

    /// Every configured check for the guest at `address`, each reported to `progress`.
    public func run(address: String, progress: Progress) -> [CheckResult] {
        var results: [CheckResult] = []
        let count = configuration.checks.ping ?? 3
        if count > 0 {
            progress.begin("ping \(address) from the gateway")
            results.append(ping(address, count: count))
            progress.end(results.last!.detail, ok: results.last!.verdict != .fail)
        }
        for port in configuration.checks.tcp ?? [] {
            progress.begin("tcp \(address):\(port)")
            results.append(tcp(address, port: port))
            progress.end(results.last!.detail, ok: results.last!.verdict != .fail)
        }
        if let tailscale = configuration.checks.tailscale {
            progress.begin("tailscale status in the guest")
            let status = tailscaleStatus(tailscale)
            results.append(status.result)
            progress.end(status.result.detail, ok: status.result.verdict != .fail)
            progress.begin("tailscale ping from this host")
            results.append(tailscalePing(tailscale, status: status.status))
            progress.end(results.last!.detail, ok: results.last!.verdict != .fail)
        }
        return results
    }

    func ping(_ address: String, count: Int) -> CheckResult {
        do {
            let report = try api.json("POST", "/sovnet/check/ping",
                                      body: PingRequest(address: address, count: count, intervalMs: 200, timeoutMs: 1000),
                                      as: PingReport.self)
            var result = CheckResult(name: "ping", verdict: report.received > 0 ? .pass : .fail, detail: report.summaryLine)
            result.ping = report
            return result
        } catch {
            return CheckResult(name: "ping", verdict: .fail, detail: "\(error)")
        }
    }

    func tcp(_ address: String, port: UInt16) -> CheckResult {
        let name = "tcp \(port)"
        let deadline = ContinuousClock.now + portWait
        while true {
            let report: TCPCheckReport
            do {
                report = try api.json("POST", "/sovnet/check/tcp",
                                      body: TCPRequest(address: address, port: port, timeoutMs: 3000), as: TCPCheckReport.self)
            } catch {
                return CheckResult(name: name, verdict: .fail, detail: "\(error)")
            }
            if report.outcome == .refused, ContinuousClock.now < deadline {
                usleep(200_000)
                continue
            }
            var result: CheckResult
            switch report.outcome {
            case .open:
                result = CheckResult(name: name, verdict: .pass,
                                     detail: String(format: "open, handshake in %.2f ms", report.milliseconds ?? 0))
            case .refused:
                result = CheckResult(name: name, verdict: .fail, detail: "refused: nothing listens on \(address):\(port)")
            case .timeout, .failed:
                result = CheckResult(name: name, verdict: .fail, detail: report.detail ?? "\(report.outcome)")
            }
            result.tcp = report
            return result
        }
    }

    func tailscaleStatus(_ tailscale: LaunchConfiguration.Tailscale) -> (result: CheckResult, status: TailscaleStatus?) {
        let source: TailscaleStatusSource
        if let path = tailscale.localapi {
            source = .localAPI(path)
        } else if let command = tailscale.statusCommand, !command.isEmpty {
            source = .command(command)
        } else {
            return (CheckResult(name: "tailscale", verdict: .fail,
                                detail: "checks.tailscale needs localapi or status-command"), nil)
        }
        do {
            let status = try source.read(log: runDirectory + "/tailscale-status.json")
            let verdict = status.verdict
            var result = CheckResult(name: "tailscale", verdict: verdict.ok ? .pass : .fail, detail: verdict.detail)
            result.tailscale = status
            return (result, status)
        } catch {
            return (CheckResult(name: "tailscale", verdict: .fail, detail: "\(error)"), nil)
        }
    }

    func tailscalePing(_ tailscale: LaunchConfiguration.Tailscale, status: TailscaleStatus?) -> CheckResult {
        let name = "tailscale ping"
        let mode = tailscale.hostPing ?? "auto"
        if mode == "false" { return CheckResult(name: name, verdict: .skip, detail: "host-ping is off") }
        guard let binary = Executable.find("tailscale") else {
            return CheckResult(name: name, verdict: mode == "true" ? .fail : .skip,
                               detail: "no tailscale command on this host")
        }
        guard let address = status?.ipv4 else {
            return CheckResult(name: name, verdict: .fail, detail: "the guest has no tailnet IPv4 address to ping")
        }
        let log = runDirectory + "/tailscale-ping.log"
        unlink(log)
        do {
            let child = try ChildProcess([binary, "ping", "-c", "3", "--timeout", "5s", address], log: log)
            _ = child.wait(seconds: 20) ?? { child.stop(); return -1 }()
            let report = TailscalePingReport.parse((try? String(contentsOfFile: log, encoding: .utf8)) ?? "", address: address)
            let verdict = report.verdict
            var result = CheckResult(name: name, verdict: verdict.ok ? .pass : .fail, detail: verdict.detail)
            result.tailscalePing = report
            return result
        } catch {
            return CheckResult(name: name, verdict: .fail, detail: "\(error)")
        }
    }
}
