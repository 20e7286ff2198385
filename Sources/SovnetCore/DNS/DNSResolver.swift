// The gateway's DNS service, sans I/O. Over UDP, `query` decides and keeps
// the forwarding state; over TCP (RFC 7766), the driver asks `decide` for
// each query and relays the ones it must to an upstream over TCP itself.
//
// Names in the local zones (`gateway` and `host` under `containers.internal`
// and `docker.internal` by default) are answered here, authoritatively: A
// and AAAA records from the zone (the gateway and the host alias have both),
// an empty NOERROR for other types of a known name,
// NXDOMAIN for unknown names in the zone. Every other query is forwarded
// unchanged but for its ID, which is replaced by one unique among the
// queries in flight, to the first upstream resolver; the answer is relayed
// as it comes, with the client's ID restored. When an upstream does not
// answer within the timeout the next one is tried, and when none does the
// client gets SERVFAIL (not NXDOMAIN: the name may well exist).
//
// A query that does not parse gets FORMERR when its header can be read, and
// nothing otherwise.
//
// Forwarding state is bounded, since a guest can ask about names whose
// upstream never answers as fast as it likes: each switch port may have
// `maximumPendingPerPort` queries waiting and all ports together
// `maximumPending`; a query beyond either gets SERVFAIL at once (counted as
// `servfail-limit`). The forwarded ID is drawn at random and, when taken,
// the next free one after it is used: with the table bounded well below
// 65,536 entries a free ID is always a short step away.
import SovnetWire

/// Who asked: where the answer must go back to, and from which of the
/// gateway's addresses (the one the query went to).
public struct DNSClient: Hashable, Sendable {
    public var address: IPAddress
    public var port: UInt16
    public var mac: MACAddress
    public var switchPort: PortID
    public var server: IPAddress

    public init(address: IPAddress, port: UInt16, mac: MACAddress, switchPort: PortID, server: IPAddress) {
        self.address = address
        self.port = port
        self.mac = mac
        self.switchPort = switchPort
        self.server = server
    }
}

/// What the resolver wants done.
public enum DNSResolverAction: Equatable, Sendable {
    /// Send this DNS message to the client.
    case answer([UInt8], to: DNSClient)
    /// Send this query to upstream resolver number `upstream`.
    case forward([UInt8], upstream: Int)
}

/// The gateway's resolver: local zones and forwarding state.
public struct DNSResolver: Sendable {
    /// Names answered locally, lower-cased, with their addresses (A and AAAA).
    public private(set) var records: [DNSName: [IPAddress]]
    /// Zones the resolver is authoritative for.
    public private(set) var zones: [DNSName]
    /// The answer for names of a zone that have no record of their own.
    public private(set) var zoneDefaults: [DNSName: IPv4Address] = [:]
    /// Records matched by regular expression, per zone, in order.
    public private(set) var zonePatterns: [DNSName: [DNSNamePattern]] = [:]
    /// How many upstream resolvers the driver has; queries name them by index.
    public private(set) var upstreamCount: Int
    public var timeout: Duration = .seconds(2)
    /// Queries waiting for an upstream, from all ports together.
    public var maximumPending = 4096
    /// Queries waiting for an upstream, from one switch port.
    public var maximumPendingPerPort = 256
    /// Counters for `/stats`.
    public private(set) var counters: [String: Int] = [:]

    private struct Pending {
        var client: DNSClient
        var clientID: UInt16
        var query: [UInt8]
        /// The resolver asked last; nil when the resolvers changed since, so
        /// that the next retry asks the first of the new ones.
        var upstream: Int?
        var deadline: ContinuousClock.Instant
    }
    private var pending: [UInt16: Pending] = [:]
    /// How many of `pending` each switch port has.
    private var pendingByPort: [PortID: Int] = [:]
    /// Queries waiting for an upstream answer.
    public var pendingCount: Int { pending.count }
    private var random: SplitMix

    public init(zones: [DNSName], records: [DNSName: [IPAddress]], upstreamCount: Int, seed: UInt64) {
        self.zones = zones.map(\.lowercased)
        self.records = Dictionary(records.map { ($0.key.lowercased, $0.value) }, uniquingKeysWith: +)
        self.upstreamCount = upstreamCount
        random = SplitMix(seed: seed)
    }

    /// gvproxy's zones: `gateway` and `host` under `containers.internal` and
    /// `docker.internal`, each with its IPv4 and its IPv6 address.
    public static func defaultRecords(gateway: [IPAddress], host: [IPAddress]) -> (zones: [DNSName], records: [DNSName: [IPAddress]]) {
        let zones: [DNSName] = ["containers.internal", "docker.internal"]
        var records: [DNSName: [IPAddress]] = [:]
        for zone in zones {
            records[DNSName(labels: [Array("gateway".utf8)] + zone.labels)] = gateway
            records[DNSName(labels: [Array("host".utf8)] + zone.labels)] = host
        }
        return (zones, records)
    }

    /// The driver's resolvers changed: queries waiting on the old ones are
    /// asked of the first new one when they time out (SERVFAIL when there is none).
    public mutating func setUpstreamCount(_ count: Int) {
        upstreamCount = max(0, count)
        for id in pending.keys { pending[id]?.upstream = nil }
    }

    /// Adds (or replaces) a local name.
    public mutating func add(_ name: DNSName, addresses: [IPAddress]) {
        records[name.lowercased] = addresses
    }

    /// Adds a zone, its records and its default answer.
    public mutating func add(_ zone: DNSZoneConfiguration) {
        let name = zone.name.lowercased
        if !zones.contains(name) { zones.append(name) }
        for (relative, address) in zone.records {
            let full = relative == "@" ? name : DNSName(labels: DNSName(relative).labels + name.labels).lowercased
            records[full, default: []].append(.v4(address))
        }
        zoneDefaults[name] = zone.defaultAddress
        zonePatterns[name, default: []] += zone.patterns
    }

    /// When `tick` must next run, if a query is waiting for upstream.
    public var nextDeadline: ContinuousClock.Instant? {
        pending.isEmpty ? nil : pending.values.lazy.map(\.deadline).min()
    }

    /// What to do with one query, before any forwarding state.
    public enum Decision: Equatable, Sendable {
        /// Nothing can be answered (not even the header parses, or it is a response).
        case drop
        /// This is the answer: local, FORMERR, or SERVFAIL when there is no upstream.
        case answer([UInt8])
        /// An upstream resolver must answer it.
        case forward
    }

    /// Decides a query: answered here or forwarded. Counts it.
    public mutating func decide(_ bytes: UnsafeRawBufferPointer) -> Decision {
        guard let header = try? DNSView(bytes), !header.flags.isResponse else {
            counters["malformed", default: 0] += 1
            return .drop
        }
        guard let message = try? DNSMessage.parse(bytes), message.questions.count == 1 else {
            counters["formerr", default: 0] += 1
            return .answer(Self.bareReply(to: header, code: .formatError))
        }
        let question = message.questions[0]
        let name = question.name.lowercased
        if header.flags.opcode == 0, zones.contains(where: { name.isSubdomain(of: $0) }) {
            counters["local", default: 0] += 1
            return .answer(localAnswer(to: message, question: question, name: name))
        }
        guard upstreamCount > 0 else {
            counters["servfail", default: 0] += 1
            return .answer(Self.bareReply(to: header, code: .serverFailure, question: question))
        }
        counters["forwarded", default: 0] += 1
        return .forward
    }

    /// The SERVFAIL answer for a query no upstream answered (or that found
    /// too many waiting already: `counter` "servfail-limit").
    public mutating func serverFailure(for query: UnsafeRawBufferPointer, counter: String = "servfail") -> [UInt8]? {
        guard let header = try? DNSView(query) else { return nil }
        counters[counter, default: 0] += 1
        return Self.bareReply(to: header, code: .serverFailure, question: try? header.firstQuestion())
    }

    /// Handles a query from a guest over UDP.
    public mutating func query(_ bytes: UnsafeRawBufferPointer, from client: DNSClient,
                               now: ContinuousClock.Instant) -> [DNSResolverAction] {
        switch decide(bytes) {
        case .drop:
            return []
        case .answer(let reply):
            return [.answer(reply, to: client)]
        case .forward:
            break
        }
        guard pending.count < min(maximumPending, 65_536), pendingByPort[client.switchPort, default: 0] < maximumPendingPerPort else {
            return serverFailure(for: bytes, counter: "servfail-limit").map { [.answer($0, to: client)] } ?? []
        }
        var id = UInt16(truncatingIfNeeded: random.next())
        while pending[id] != nil { id &+= 1 }
        var forwarded = Array(bytes)
        let clientID = UInt16(forwarded[0]) << 8 | UInt16(forwarded[1])
        forwarded[0] = UInt8(id >> 8)
        forwarded[1] = UInt8(id & 0xFF)
        pending[id] = Pending(client: client, clientID: clientID, query: forwarded, upstream: 0, deadline: now + timeout)
        pendingByPort[client.switchPort, default: 0] += 1
        return [.forward(forwarded, upstream: 0)]
    }

    /// Handles a reply from upstream resolver number `upstream`.
    public mutating func upstreamReply(_ bytes: UnsafeRawBufferPointer, from upstream: Int) -> [DNSResolverAction] {
        guard let header = try? DNSView(bytes), header.flags.isResponse,
              let entry = pending[header.id], entry.upstream == upstream else {
            counters["stray-replies", default: 0] += 1
            return []
        }
        finish(header.id)
        counters["answered", default: 0] += 1
        var reply = Array(bytes)
        reply[0] = UInt8(entry.clientID >> 8)
        reply[1] = UInt8(entry.clientID & 0xFF)
        return [.answer(reply, to: entry.client)]
    }

    /// Retries or fails queries whose upstream did not answer in time.
    public mutating func tick(now: ContinuousClock.Instant) -> [DNSResolverAction] {
        var actions: [DNSResolverAction] = []
        for (id, entry) in pending where entry.deadline <= now {
            let next = entry.upstream.map { $0 + 1 } ?? 0
            if next < upstreamCount {
                pending[id]?.upstream = next
                pending[id]?.deadline = now + timeout
                actions.append(.forward(entry.query, upstream: next))
            } else {
                finish(id)
                if var reply = entry.query.withUnsafeBytes({ serverFailure(for: $0) }) {
                    reply[0] = UInt8(entry.clientID >> 8)
                    reply[1] = UInt8(entry.clientID & 0xFF)
                    actions.append(.answer(reply, to: entry.client))
                }
            }
        }
        return actions
    }

    /// Forgets a query that was answered or failed.
    private mutating func finish(_ id: UInt16) {
        guard let entry = pending.removeValue(forKey: id) else { return }
        let port = entry.client.switchPort
        pendingByPort[port] = pendingByPort[port, default: 1] > 1 ? pendingByPort[port]! - 1 : nil
    }

    private func localAnswer(to query: DNSMessage, question: DNSQuestion, name: DNSName) -> [UInt8] {
        var flags = DNSFlags(rawValue: 0)
        flags.isResponse = true
        flags.authoritative = true
        flags.recursionDesired = query.flags.recursionDesired
        flags.recursionAvailable = true
        var reply = DNSMessage(id: query.id, flags: flags, questions: [question])
        let zone = zones.filter { name.isSubdomain(of: $0) }.max { $0.labels.count < $1.labels.count }
        if let addresses = records[name] ?? zone.flatMap({ patternAddress(name, in: $0) ?? zoneDefaults[$0] }).map({ [.v4($0)] }) {
            reply.answers = addresses.compactMap { address in
                switch address {
                case .v4(let address) where question.type == .a || question.type == .any:
                    DNSResourceRecord(name: question.name, type: .a, ttl: 0, data: .a(address))
                case .v6(let address) where question.type == .aaaa || question.type == .any:
                    DNSResourceRecord(name: question.name, type: .aaaa, ttl: 0, data: .aaaa(address))
                default:
                    nil
                }
            }
        } else {
            reply.flags.responseCode = .nameError
        }
        return (try? reply.bytes()) ?? []
    }

    /// The address of the first regexp record of `zone` that `name` matches.
    private func patternAddress(_ name: DNSName, in zone: DNSName) -> IPv4Address? {
        guard let patterns = zonePatterns[zone], !patterns.isEmpty, name.labels.count > zone.labels.count else { return nil }
        let relative = String(DNSName(labels: Array(name.labels.dropLast(zone.labels.count))).description.dropLast())
        return patterns.first { $0.matches(relative) }?.address
    }

    /// A reply with only a header (and the question, when known).
    static func bareReply(to header: DNSView, code: DNSResponseCode, question: DNSQuestion? = nil) -> [UInt8] {
        var flags = header.flags
        flags.isResponse = true
        flags.recursionAvailable = true
        flags.authoritative = false
        flags.truncated = false
        flags.responseCode = code
        let reply = DNSMessage(id: header.id, flags: flags, questions: question.map { [$0] } ?? [])
        return (try? reply.bytes()) ?? []
    }
}
