// The gateway's DHCPv6 server (RFC 8415), sans I/O. It always serves
// stateless configuration: an INFORMATION-REQUEST gets the DNS servers and
// the search list (RFC 3646). With a pool it also hands out addresses in
// identity associations (IA_NA): SOLICIT is answered with an ADVERTISE (or,
// with rapid commit, a REPLY that commits), REQUEST, RENEW and REBIND with a
// REPLY holding the address for the lease time, RELEASE and DECLINE give
// addresses back (a declined one is not handed out again), CONFIRM says
// whether addresses are on the link. Without a pool a SOLICIT gets the
// NoAddrsAvail status of RFC 8415 §18.3.9, and the gateway's router
// advertisements leave the M flag off, so clients stay with SLAAC.
//
// A binding is keyed by the client's DUID and the IA's identifier and tied
// to the switch port it was made on: the address is claimed for that port
// through `claim` (the network's `IPv6Bindings`), so no other guest can
// take it, and a client on another live port gets no binding of it.
// Bindings are bounded per port and in all. Messages that carry a server
// identifier other than ours, or break the rules of §16 on which
// identifiers a message must or must not carry, are dropped.
import SovnetWire

/// The DHCPv6 server's settings.
public struct DHCPv6ServerConfiguration: Sendable {
    /// The server's DUID: DUID-LL (type 3) of the gateway's MAC.
    public var serverDUID: [UInt8]
    /// The /64 addresses are handed out in.
    public var prefix: IPv6Address
    /// Interface identifiers (the low 64 bits) of the addresses handed out; nil: stateless only.
    public var pool: ClosedRange<UInt64>?
    public var dnsServers: [IPv6Address]
    public var searchDomains: [DNSName]
    /// Valid and preferred lifetime of the addresses, in seconds.
    public var leaseTime: UInt32
    public var maximumBindingsPerPort = 16
    public var maximumBindings = 4096

    public init(gatewayMAC: MACAddress, prefix: IPv6Address, pool: ClosedRange<UInt64>?, dnsServers: [IPv6Address],
                searchDomains: [DNSName], leaseTime: UInt32) {
        var duid: [UInt8] = [0, 3, 0, 1]
        duid.append(contentsOf: mac(gatewayMAC))
        serverDUID = duid
        self.prefix = prefix
        self.pool = pool
        self.dnsServers = dnsServers
        self.searchDomains = searchDomains
        self.leaseTime = leaseTime
    }
}

private func mac(_ address: MACAddress) -> [UInt8] {
    (0..<6).map { UInt8(truncatingIfNeeded: address.rawValue >> (40 - 8 * UInt64($0))) }
}

/// What the DHCPv6 server did, for the log.
public enum DHCPv6ServerEvent: Equatable, Sendable {
    case leased(IPv6Address, PortID)
    case released(IPv6Address)
    case declined(IPv6Address)
}

/// Stateless DHCPv6 always, addresses from a pool when it has one.
public struct DHCPv6Server: Sendable {
    public var configuration: DHCPv6ServerConfiguration

    private struct BindingKey: Hashable, Sendable {
        var duid: [UInt8]
        var identifier: UInt32
    }

    private struct Binding: Sendable {
        var address: IPv6Address
        var port: PortID
        var expires: ContinuousClock.Instant
    }

    private var bindings: [BindingKey: Binding] = [:]
    /// Each port's binding keys (at most `maximumBindingsPerPort`).
    private var keysByPort: [PortID: [BindingKey]] = [:]
    /// The binding holding each address.
    private var holders: [IPv6Address: BindingKey] = [:]
    /// When the whole table was last swept of expired bindings.
    private var lastSweep: ContinuousClock.Instant?
    /// Addresses a client declined: in use by something else, not handed
    /// out again (at most `maximumDeclined`, so declining cannot fill memory).
    private var declined: Set<IPv6Address> = []
    static let maximumDeclined = 1024
    private var nextCandidate: UInt64?
    /// How long an advertised address is held for the REQUEST that takes it.
    static let offerHold: Duration = .seconds(60)
    public private(set) var events: [DHCPv6ServerEvent] = []

    public init(configuration: DHCPv6ServerConfiguration) {
        self.configuration = configuration
    }

    /// The events since the last call.
    public mutating func takeEvents() -> [DHCPv6ServerEvent] {
        guard !events.isEmpty else { return [] }
        defer { events.removeAll() }
        return events
    }

    /// The answer to `message` from the guest on `port`, or nil when it gets
    /// none. `claim` binds an address to the port (false: another guest has it).
    public mutating func answer(_ message: DHCPv6Message, from port: PortID, now: ContinuousClock.Instant,
                                claim: (IPv6Address) -> Bool) -> DHCPv6Message? {
        let serverID = message.serverID
        if message.type == .informationRequest {
            guard message.identityAssociations.isEmpty, serverID == nil || serverID == configuration.serverDUID else { return nil }
            return informationReply(message)
        }
        guard let clientID = message.clientID else { return nil }
        switch message.type {
        case .solicit, .rebind, .confirm:
            guard serverID == nil else { return nil }
        case .request, .renew, .release, .decline:
            guard serverID == configuration.serverDUID else { return nil }
        default:
            return nil
        }
        var reply = DHCPv6Message(type: .reply, transactionID: message.transactionID,
                                  options: [.serverID(configuration.serverDUID), .clientID(clientID)])
        switch message.type {
        case .solicit:
            guard configuration.pool != nil else {
                reply.type = .advertise
                reply.options.append(.status(.noAddressesAvailable, "this server hands out no addresses; use SLAAC"))
                return reply
            }
            let commit = message.hasRapidCommit
            reply.type = commit ? .reply : .advertise
            if commit { reply.options.append(.rapidCommit) }
            for ia in message.identityAssociations {
                reply.options.append(.identityAssociation(lease(ia, client: clientID, port: port, now: now,
                                                                 hold: commit ? nil : Self.offerHold, claim: claim)))
            }
        case .request, .renew, .rebind:
            for ia in message.identityAssociations {
                guard configuration.pool != nil else {
                    reply.options.append(.identityAssociation(Self.status(ia, .noAddressesAvailable)))
                    continue
                }
                let key = BindingKey(duid: clientID, identifier: ia.identifier)
                if message.type != .request, bindings[key] == nil || bindings[key]?.port != port {
                    reply.options.append(.identityAssociation(Self.status(ia, .noBinding)))
                    continue
                }
                reply.options.append(.identityAssociation(lease(ia, client: clientID, port: port, now: now, hold: nil,
                                                                 claim: claim)))
            }
        case .confirm:
            let addresses = message.identityAssociations.flatMap(\.addresses).map(\.address)
            guard !addresses.isEmpty else { return nil }
            let onLink = addresses.allSatisfy { $0.masked(prefixLength: 64) == configuration.prefix }
            reply.options.append(onLink ? .status(.success, "on link") : .status(.notOnLink, "not on this link"))
        case .release, .decline:
            for ia in message.identityAssociations {
                let key = BindingKey(duid: clientID, identifier: ia.identifier)
                guard let binding = bindings[key], binding.port == port else {
                    reply.options.append(.identityAssociation(Self.status(ia, .noBinding)))
                    continue
                }
                remove(key)
                if message.type == .decline, declined.count < Self.maximumDeclined { declined.insert(binding.address) }
                note(message.type == .decline ? .declined(binding.address) : .released(binding.address))
            }
            reply.options.append(.status(.success, message.type == .decline ? "declined" : "released"))
        default:
            return nil
        }
        reply.options += configurationOptions
        return reply
    }

    /// Keeps an event for the log; past `maximumEvents` waiting, it is not kept.
    private mutating func note(_ event: DHCPv6ServerEvent) {
        if events.count < Self.maximumEvents { events.append(event) }
    }

    static let maximumEvents = 256

    /// The DNS servers and search list every reply carries.
    private var configurationOptions: [DHCPv6Option] {
        var options: [DHCPv6Option] = []
        if !configuration.dnsServers.isEmpty { options.append(.dnsServers(configuration.dnsServers)) }
        if !configuration.searchDomains.isEmpty { options.append(.domainList(configuration.searchDomains)) }
        return options
    }

    private func informationReply(_ message: DHCPv6Message) -> DHCPv6Message {
        var options: [DHCPv6Option] = [.serverID(configuration.serverDUID)]
        if let clientID = message.clientID { options.append(.clientID(clientID)) }
        return DHCPv6Message(type: .reply, transactionID: message.transactionID, options: options + configurationOptions)
    }

    private static func status(_ ia: DHCPv6IdentityAssociation, _ status: DHCPv6Status) -> DHCPv6IdentityAssociation {
        DHCPv6IdentityAssociation(identifier: ia.identifier, renewalTime: 0, rebindingTime: 0,
                                  options: [.status(status, status == .noBinding ? "no binding" : "no addresses available")])
    }

    /// The IA as leased to the client: its binding's address (kept, or a
    /// new one from the pool), for the lease time; `hold` only reserves it
    /// (an ADVERTISE) for that long.
    private mutating func lease(_ ia: DHCPv6IdentityAssociation, client: [UInt8], port: PortID, now: ContinuousClock.Instant,
                                hold: Duration?, claim: (IPv6Address) -> Bool) -> DHCPv6IdentityAssociation {
        let key = BindingKey(duid: client, identifier: ia.identifier)
        let lifetime = configuration.leaseTime
        let expires = now + (hold ?? .seconds(Int64(lifetime)))
        var address: IPv6Address?
        if let binding = bindings[key], binding.port == port, claim(binding.address) {
            address = binding.address
            bindings[key]?.expires = expires
        } else {
            remove(key)
            address = freeAddress(port: port, now: now, claim: claim)
            if let address {
                bindings[key] = Binding(address: address, port: port, expires: expires)
                keysByPort[port, default: []].append(key)
                holders[address] = key
            }
        }
        guard let address else { return Self.status(ia, .noAddressesAvailable) }
        if hold == nil { note(.leased(address, port)) }
        return DHCPv6IdentityAssociation(identifier: ia.identifier, renewalTime: lifetime / 2, rebindingTime: lifetime / 5 * 4,
                                         options: [.address(DHCPv6Address(address: address, preferredLifetime: lifetime,
                                                                          validLifetime: lifetime))])
    }

    private mutating func remove(_ key: BindingKey) {
        guard let binding = bindings.removeValue(forKey: key) else { return }
        holders[binding.address] = nil
        keysByPort[binding.port]?.removeAll { $0 == key }
        if keysByPort[binding.port]?.isEmpty == true { keysByPort[binding.port] = nil }
    }

    /// Forgets `port`'s expired bindings, and every port's when the table is
    /// full (at most once a second, so a flood does not sweep it each time).
    private mutating func expire(port: PortID, now: ContinuousClock.Instant) {
        for key in keysByPort[port] ?? [] where bindings[key].map({ $0.expires <= now }) == true { remove(key) }
        guard bindings.count >= configuration.maximumBindings, lastSweep.map({ now - $0 >= .seconds(1) }) ?? true else { return }
        lastSweep = now
        for (key, binding) in bindings where binding.expires <= now { remove(key) }
    }

    /// A pool address no binding holds and `claim` gives this port, after
    /// forgetting expired bindings; nil when the limits or the pool are exhausted.
    private mutating func freeAddress(port: PortID, now: ContinuousClock.Instant, claim: (IPv6Address) -> Bool) -> IPv6Address? {
        guard let pool = configuration.pool else { return nil }
        expire(port: port, now: now)
        guard bindings.count < configuration.maximumBindings,
              keysByPort[port, default: []].count < configuration.maximumBindingsPerPort else { return nil }
        var candidate = nextCandidate ?? pool.lowerBound
        for _ in 0...min(pool.upperBound - pool.lowerBound, 4095) {
            let address = IPv6Address(high: configuration.prefix.high, low: candidate)
            candidate = candidate >= pool.upperBound ? pool.lowerBound : candidate + 1
            if holders[address] == nil, !declined.contains(address), claim(address) {
                nextCandidate = candidate
                return address
            }
        }
        return nil
    }
}
