// The guest's Tailscale state, read as tailscaled reports it: the JSON of
// `GET /localapi/v0/status` on its LocalAPI socket (what `tailscale status
// --json` prints), with the field names of tailscale's `ipnstate.Status`
// and `ipnstate.PeerStatus`. Only the fields the verdict needs are decoded;
// the rest of the document is ignored.
import Foundation
import SovnetGuest
import SovnetLink

/// The parts of `ipnstate.Status` the checks read.
public struct TailscaleStatus: Codable, Sendable, Equatable {
    public var Version: String?
    /// NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting or Running.
    public var BackendState: String
    public var TailscaleIPs: [String]?
    public var Self_: Peer?
    public var Health: [String]?
    public var CurrentTailnet: Tailnet?

    enum CodingKeys: String, CodingKey {
        case Version, BackendState, TailscaleIPs, Health, CurrentTailnet
        case Self_ = "Self"
    }

    /// The parts of `ipnstate.PeerStatus` the checks read.
    public struct Peer: Codable, Sendable, Equatable {
        public var HostName: String?
        public var DNSName: String?
        public var TailscaleIPs: [String]?
        public var Online: Bool?
        /// The DERP region this node is homed on.
        public var Relay: String?
    }

    public struct Tailnet: Codable, Sendable, Equatable {
        public var Name: String?
        public var MagicDNSSuffix: String?
    }

    /// Parses `tailscale status --json` output.
    public static func parse(_ bytes: [UInt8]) throws -> TailscaleStatus {
        do {
            return try JSONDecoder().decode(TailscaleStatus.self, from: Data(bytes))
        } catch {
            throw LaunchError("tailscale status: not the JSON of ipnstate.Status (\(error))")
        }
    }

    /// The guest's tailnet IPv4 address (100.64.0.0/10), if it has one.
    public var ipv4: String? {
        (TailscaleIPs ?? Self_?.TailscaleIPs ?? []).first { !$0.contains(":") }
    }

    /// Whether the node is up on its tailnet, and if not, why.
    public var verdict: (ok: Bool, detail: String) {
        var facts = ["backend \(BackendState)"]
        if let online = Self_?.Online { facts.append(online ? "online" : "offline") }
        let addresses = TailscaleIPs ?? Self_?.TailscaleIPs ?? []
        if !addresses.isEmpty { facts.append(addresses.joined(separator: " ")) }
        if let name = Self_?.DNSName, !name.isEmpty { facts.append(name) }
        if let relay = Self_?.Relay, !relay.isEmpty { facts.append("DERP home \(relay)") }
        for problem in Health ?? [] { facts.append("health: \(problem)") }
        let ok = BackendState == "Running" && Self_?.Online != false && !addresses.isEmpty
        return (ok, facts.joined(separator: ", "))
    }
}

/// Where the guest's status comes from.
public enum TailscaleStatusSource: Sendable {
    /// A unix socket reaching the guest's tailscaled LocalAPI.
    case localAPI(String)
    /// A command that prints `tailscale status --json`.
    case command([String])

    /// Reads the status.
    public func read(timeout: Duration = .seconds(10), log: String) throws -> TailscaleStatus {
        switch self {
        case .localAPI(let path):
            let client = ControlClient(endpoint: .unix(path: path), host: "local-tailscaled.sock", timeout: timeout)
            let response = try client.request("GET", "/localapi/v0/status")
            guard response.status == 200 else {
                throw LaunchError("tailscaled LocalAPI at \(path): HTTP \(response.status): \(response.text)")
            }
            return try TailscaleStatus.parse(response.body)
        case .command(let arguments):
            let child = try ChildProcess(arguments, log: log)
            guard let status = child.wait(seconds: timeout.milliseconds / 1000) else {
                child.stop()
                throw LaunchError("\(arguments.joined(separator: " ")): no answer in \(timeout)")
            }
            let output = FileManager.default.contents(atPath: log).map { Array($0) } ?? []
            guard status == 0 else {
                throw LaunchError("\(arguments.joined(separator: " ")) exited with \(status): \(LogFile.tail(log, lines: 3))")
            }
            return try TailscaleStatus.parse(output)
        }
    }
}
