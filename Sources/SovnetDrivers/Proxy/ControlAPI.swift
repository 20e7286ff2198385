// The control API's routes, with gvproxy's JSON shapes, as a pure function of
// a request and the network: the HTTP server (`ControlServer`) only moves
// bytes. Every request is answered; bad JSON or a bad address is a 400 with
// a message, an unknown path a 404, a wrong method a 405.
//
//   GET  /services/dhcp/leases, /leases  {"192.168.127.2": "5a:94:ef:e4:0c:ee"}
//   GET  /services/dns/all               [{"Name": "containers.internal.", "Records": [{"Name": "gateway", "IP": "…"}]}]
//   POST /services/dns/add               {"Name": "zone.", "Records": [{"Name": "db", "IP": "…"}], "DefaultIP": "…"}
//   GET  /cam                            {"5a:94:ef:e4:0c:ee": 1}   (MAC → switch port)
//   GET  /stats                          frames and bytes per port, drops by reason, ARP, ICMP, DHCP and DNS
//                                        counters, and the NAT's flows, traffic and drops
//   GET  /services/forwarder/all         [{"local": "127.0.0.1:2222", "remote": "192.168.127.2:22", "protocol": "tcp"}]
//   POST /services/forwarder/expose      {"local": ":8080", "remote": "192.168.127.2:80", "protocol": "tcp"}
//   POST /services/forwarder/unexpose    {"local": ":8080", "protocol": "tcp"}
//   (a unix forward's remote may be ssh-tunnel://USER@ADDR[:PORT]/PATH?key=FILE[&passphrase=…]:
//   a unix socket forward over SSH, `SSHForwarding`; the host's API only)
//
// sovnet's own, for `sovnet up` and `sovnet check`:
//   POST /sovnet/check/ping              {"address": "192.168.127.2", "count": 3, "intervalMs": 200, "timeoutMs": 1000}
//                                        → a `PingReport`
//   POST /sovnet/check/tcp               {"address": "192.168.127.2", "port": 22, "timeoutMs": 3000}
//                                        → a `TCPCheckReport`
//
// Every route acts on what the proxy loop owns, through its mailbox: the
// forwarder and check routes through `PortForwarding` and `GuestProbing`
// (the server runs them off its event loop), the others as jobs on the
// loop (`LoopNetwork`).
import Foundation
import SovnetCore
import SovnetWire

/// Answers control API requests.
public enum ControlAPI {
    /// An HTTP answer: status code and JSON body.
    public struct Response: Equatable, Sendable {
        public var status: Int
        public var body: [UInt8]
    }

    /// A DNS zone as gvproxy's API writes it.
    struct Zone: Codable {
        var Name: String
        var Records: [Record]?
        var DefaultIP: String?
    }

    struct Record: Codable {
        var Name: String
        var IP: String
    }

    /// A forward as gvproxy's API writes it; `protocol` defaults to tcp.
    struct Forward: Codable {
        var local: String
        var remote: String?
        var `protocol`: String?
    }

    /// The route of a request path: the path without its query.
    public static func route(_ path: String) -> String {
        path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
    }

    /// A check request: `count` and `intervalMs` are the ping's only.
    struct CheckRequest: Codable {
        var address: String
        var port: UInt16?
        var count: Int?
        var intervalMs: Int?
        var timeoutMs: Int?
    }

    /// Whether a route is one of the checks, answered by `respondCheck`.
    public static func isCheckRoute(_ route: String) -> Bool {
        route.hasPrefix("/sovnet/check/")
    }

    /// Runs a check; blocks for about the check's timeout.
    public static func respondCheck(method: String, path: String, body: [UInt8], probing: GuestProbing) -> Response {
        let route = route(path)
        guard route == "/sovnet/check/ping" || route == "/sovnet/check/tcp" else {
            return error(404, "no such endpoint: \(route)")
        }
        guard method == "POST" else { return error(405, "\(method) is not allowed on \(route)") }
        let request: CheckRequest
        do {
            request = try JSONDecoder().decode(CheckRequest.self, from: Data(body))
        } catch {
            return self.error(400, "bad check JSON: \(error)")
        }
        guard let address = IPAddress(request.address) else { return error(400, "bad address '\(request.address)'") }
        let timeout = Duration.milliseconds(request.timeoutMs ?? 1000)
        guard (1...60_000).contains(request.timeoutMs ?? 1000) else { return error(400, "timeoutMs must be 1 to 60000") }
        if route == "/sovnet/check/tcp" {
            guard let port = request.port, port > 0 else { return error(400, "a TCP check needs a port from 1 to 65535") }
            return json(probing.connect(address, port: port, timeout: timeout))
        }
        let count = request.count ?? 3
        let interval = request.intervalMs ?? 200
        guard (1...100).contains(count) else { return error(400, "count must be 1 to 100") }
        guard (1...10_000).contains(interval) else { return error(400, "intervalMs must be 1 to 10000") }
        return json(probing.ping(address, count: count, interval: .milliseconds(interval), timeout: timeout))
    }

    /// Whether a route is one of the forwarder's, answered by `respondForwarder`.
    public static func isForwarderRoute(_ route: String) -> Bool {
        route.hasPrefix("/services/forwarder/")
    }

    /// Routes a forwarder request from `requester`.
    public static func respondForwarder(method: String, path: String, body: [UInt8], forwarding: PortForwarding,
                                        requester: ForwardRequester = .host) -> Response {
        let route = route(path)
        switch (method, route) {
        case ("GET", "/services/forwarder/all"):
            guard let forwards = forwarding.forwards(for: requester) else { return error(503, "the proxy is shutting down") }
            return json(forwards.map {
                Forward(local: $0.local, remote: $0.remote.with(port: $0.remotePort), protocol: $0.kind.rawValue)
            } + forwarding.tunnels(for: requester).map {
                Forward(local: $0.socket, remote: $0.remote, protocol: PortForward.Kind.unix.rawValue)
            })
        case ("POST", "/services/forwarder/expose"):
            do {
                let (request, kind) = try decodeForward(body)
                if kind == .unix, let remote = request.remote, remote.hasPrefix("ssh-tunnel://") {
                    guard requester == .host else { return self.error(403, "only the host may forward over SSH") }
                    let tunnel = try SSHTunnelSpec(socket: request.local, url: remote)
                    if let problem = forwarding.expose(tunnel, by: requester) { return self.error(409, problem.description) }
                    return Response(status: 200, body: [])
                }
                let forward = try PortForward(kind: kind, local: request.local, remote: request.remote ?? "")
                if let problem = forwarding.expose(forward, by: requester) {
                    return self.error(requester == .host ? 409 : 403, problem.description)
                }
                return Response(status: 200, body: [])
            } catch {
                return self.error(400, error.description)
            }
        case ("POST", "/services/forwarder/unexpose"):
            do {
                let (request, kind) = try decodeForward(body)
                let local = try PortForward.normalizedLocal(kind: kind, request.local)
                if let problem = forwarding.unexpose(kind: kind, local: local, by: requester) {
                    return self.error(404, problem.description)
                }
                return Response(status: 200, body: [])
            } catch {
                return self.error(400, error.description)
            }
        case (_, "/services/forwarder/all"), (_, "/services/forwarder/expose"), (_, "/services/forwarder/unexpose"):
            return error(405, "\(method) is not allowed on \(route)")
        default:
            return error(404, "no such endpoint: \(route)")
        }
    }

    /// A forwarder request's JSON and its protocol (tcp when not given).
    private static func decodeForward(_ body: [UInt8]) throws(PortForwardError) -> (Forward, PortForward.Kind) {
        let request: Forward
        do {
            request = try JSONDecoder().decode(Forward.self, from: Data(body))
        } catch {
            throw PortForwardError("bad forward JSON: \(error)")
        }
        guard let kind = PortForward.Kind(rawValue: request.protocol ?? "tcp") else {
            throw PortForwardError("unknown protocol '\(request.protocol ?? "")': want tcp, udp or unix")
        }
        return (request, kind)
    }

    /// What the read-only routes show of the network, copied under its lock
    /// (the tables are copied on write, so this costs no more than a few
    /// references) and encoded after the lock is let go.
    public struct Snapshot: Sendable {
        var counters: NetworkCounters
        var macTable: [MACAddress: PortID]
        var dhcp: DHCPServer
        var dns: DNSResolver
        var nat: NATStatistics

        public init(_ network: VirtualNetwork, nat: NATStatistics = NATStatistics()) {
            counters = network.counters
            macTable = network.macTable
            dhcp = network.dhcp
            dns = network.dns
            self.nat = nat
        }
    }

    /// Whether a route changes the network, and so is answered on the loop's
    /// thread by `respond(…network:)`; the others are answered from a `Snapshot`.
    public static func changesNetwork(_ route: String) -> Bool {
        route == "/services/dns/add"
    }

    /// Routes a request that changes the network; on the thread that owns `network`.
    public static func respond(method: String, path: String, body: [UInt8], network: VirtualNetwork) -> Response {
        let route = route(path)
        guard changesNetwork(route) else { return respond(method: method, path: path, snapshot: Snapshot(network)) }
        guard method == "POST" else { return error(405, "\(method) is not allowed on \(route)") }
        return addZone(body, to: network)
    }

    /// Routes a request that only reads.
    public static func respond(method: String, path: String, snapshot: Snapshot) -> Response {
        let route = route(path)
        switch (method, route) {
        case ("GET", "/services/dhcp/leases"), ("GET", "/leases"):
            var leases: [String: String] = [:]
            for lease in snapshot.dhcp.leases where lease.state == .bound {
                leases[lease.address.description] = lease.mac.description
            }
            return json(leases)
        case ("GET", "/services/dns/all"):
            return json(zones(of: snapshot.dns))
        case ("GET", "/cam"):
            return json(Dictionary(uniqueKeysWithValues: snapshot.macTable.map { ($0.key.description, $0.value.rawValue) }))
        case ("GET", "/stats"):
            return json(Stats(snapshot))
        case (_, "/services/dhcp/leases"), (_, "/leases"), (_, "/services/dns/all"), (_, "/cam"), (_, "/stats"):
            return error(405, "\(method) is not allowed on \(route)")
        default:
            return error(404, "no such endpoint: \(route)")
        }
    }

    private static func addZone(_ body: [UInt8], to network: VirtualNetwork) -> Response {
        let zone: Zone
        do {
            zone = try JSONDecoder().decode(Zone.self, from: Data(body))
        } catch {
            return self.error(400, "bad zone JSON: \(error)")
        }
        var records: [String: IPv4Address] = [:]
        for record in zone.Records ?? [] {
            guard let address = IPv4Address(record.IP) else { return self.error(400, "bad IP '\(record.IP)' for \(record.Name)") }
            guard !record.Name.isEmpty else { return self.error(400, "a record needs a name") }
            records[record.Name] = address
        }
        var defaultAddress: IPv4Address?
        if let text = zone.DefaultIP, !text.isEmpty {
            guard let address = IPv4Address(text) else { return self.error(400, "bad DefaultIP '\(text)'") }
            defaultAddress = address
        }
        guard !zone.Name.isEmpty, (try? DNSName(zone.Name).validate()) != nil else {
            return self.error(400, "bad zone name '\(zone.Name)'")
        }
        network.addDNSZone(DNSZoneConfiguration(name: DNSName(zone.Name), records: records, defaultAddress: defaultAddress))
        return Response(status: 200, body: [])
    }

    /// The resolver's local zones with the names under each, relative to it.
    static func zones(of resolver: DNSResolver) -> [Zone] {
        resolver.zones.map { zone in
            let records = resolver.records.filter { $0.key.isSubdomain(of: zone) }.flatMap { name, addresses in
                let relative = DNSName(labels: Array(name.labels.dropLast(zone.labels.count)))
                let text = relative.labels.isEmpty ? "@" : String(relative.description.dropLast())
                return addresses.map { Record(Name: text, IP: $0.description) }
            }.sorted { ($0.Name, $0.IP) < ($1.Name, $1.IP) }
            return Zone(Name: zone.description, Records: records, DefaultIP: resolver.zoneDefaults[zone]?.description)
        }
    }

    struct Stats: Encodable {
        var ports: [String: PortCounters]
        /// The ports that have gone, their traffic together.
        var departedPorts: PortCounters
        var departedPortCount: Int
        var drops: [String: Int]
        var arpReplies: Int
        var echoReplies: Int
        var dhcp: [String: Int]
        var dhcpv6: [String: Int]
        var dns: [String: Int]
        var nat: NATStatistics

        init(_ snapshot: Snapshot) {
            nat = snapshot.nat
            let counters = snapshot.counters
            ports = Dictionary(uniqueKeysWithValues: counters.ports.map { (String($0.key), $0.value) })
            departedPorts = counters.departedPorts
            departedPortCount = counters.departedPortCount
            drops = Dictionary(uniqueKeysWithValues: counters.drops.map { ($0.key.rawValue, $0.value) })
            arpReplies = counters.arpReplies
            echoReplies = counters.echoReplies
            dhcp = counters.dhcp
            dhcpv6 = counters.dhcpv6
            dns = snapshot.dns.counters
        }
    }

    static func json<T: Encodable>(_ value: T) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(status: 200, body: Array((try? encoder.encode(value)) ?? Data("null".utf8)))
    }

    static func error(_ status: Int, _ message: String) -> Response {
        Response(status: status, body: Array(message.utf8) + [0x0A])
    }
}
