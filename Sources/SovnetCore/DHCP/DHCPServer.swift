// A DHCPv4 server for one virtual subnet (RFC 2131 §4.3), sans I/O.
//
// Addresses come from static bindings (by MAC) first, then from a pool.
// Bindings are keyed by the client identifier (option 61) when a client
// sends one, else by its MAC. The server is authoritative for its subnet: a
// request for an address outside it, or bound to someone else, is NAKed; an
// INIT-REBOOT request for a free address it has no record of is granted, as
// dnsmasq's authoritative mode does.
//
// Every binding belongs to the switch port (guest connection) it was made
// on, because on a shared switch a MAC or a client identifier is only a
// claim: a RELEASE or DECLINE counts only from the port and client that hold
// the address, a client identifier or address bound on another live port is
// not given away, and each port holds at most `maximumLeasesPerPort`
// bindings (offers included), so one guest cannot take the pool. A binding
// outlives its port: the same MAC coming back on a new port (a forwarder
// that reconnected) takes it over. When the pool is empty, the bindings of
// ports that are gone are reclaimed, the longest gone first, so a new guest
// gets an address while departed ones squat.
//
// Guests may also use an address without asking (a static configuration, or
// a lease from before a proxy restart): `claim` binds a free address to the
// port that uses it, under the same per-port limit.
//
// The table is indexed by address and by client, so no message scans it;
// expired bindings are swept at most once a second.
//
// `handle` takes a parsed request and returns the reply to send and what
// happened; the network core puts replies in frames (broadcast when the
// client asks for it or for a NAK, otherwise unicast to its MAC).
import SovnetWire

/// What a DHCP server hands out.
public struct DHCPServerConfiguration: Sendable {
    public var serverAddress: IPv4Address
    public var network: IPv4Address
    public var prefixLength: Int
    public var router: IPv4Address?
    public var dnsServers: [IPv4Address]
    public var searchDomains: [DNSName]
    public var mtu: Int?
    /// Seconds; T1 and T2 are half and seven eighths of it.
    public var leaseTime: UInt32
    /// Addresses bound to MACs whatever else happens.
    public var staticBindings: [MACAddress: IPv4Address]
    /// The dynamic pool, inclusive; addresses in use elsewhere are skipped.
    public var pool: ClosedRange<UInt32>
    /// Addresses never handed out (the gateway, virtual IPs).
    public var reserved: Set<IPv4Address>
    /// How long an offer holds its address.
    public var offerHold: Duration
    /// How long a declined address stays out of the pool (dnsmasq: 10 minutes).
    public var declineHold: Duration
    /// Bindings (offered or bound) one switch port may hold.
    public var maximumLeasesPerPort: Int

    public init(serverAddress: IPv4Address, prefixLength: Int, router: IPv4Address?, dnsServers: [IPv4Address],
                searchDomains: [DNSName], mtu: Int?, leaseTime: UInt32, staticBindings: [MACAddress: IPv4Address],
                pool: ClosedRange<IPv4Address>, reserved: Set<IPv4Address>) {
        self.serverAddress = serverAddress
        network = serverAddress.masked(prefixLength: prefixLength)
        self.prefixLength = prefixLength
        self.router = router
        self.dnsServers = dnsServers
        self.searchDomains = searchDomains
        self.mtu = mtu
        self.leaseTime = leaseTime
        self.staticBindings = staticBindings
        self.pool = pool.lowerBound.rawValue...pool.upperBound.rawValue
        self.reserved = reserved.union([serverAddress])
        offerHold = .seconds(60)
        declineHold = .seconds(600)
        maximumLeasesPerPort = 16
    }

    /// Whether `address` is a host address of the subnet.
    public func contains(_ address: IPv4Address) -> Bool {
        let broadcast = network.rawValue | ~IPv4Address.mask(prefixLength: prefixLength).rawValue
        return address.masked(prefixLength: prefixLength) == network && address != network
            && address.rawValue != broadcast
    }
}

/// One binding of the server's table.
public struct DHCPServerLease: Hashable, Sendable {
    public enum State: String, Sendable { case offered, bound }
    public var address: IPv4Address
    public var mac: MACAddress
    public var clientIdentifier: [UInt8]?
    public var hostName: String?
    public var state: State
    public var expires: ContinuousClock.Instant
    /// The switch port the binding was made on, or last taken over by.
    public var port: PortID
    /// Made by `claim`: a guest used the address without asking. A MAC may
    /// hold several of these (addresses configured by hand), besides the one
    /// binding DHCP gives its client.
    public var takenByUse = false
}

/// What one request led to, for counters and logs.
public enum DHCPServerEvent: Equatable, Sendable {
    case offered(IPv4Address, MACAddress)
    case acknowledged(IPv4Address, MACAddress)
    case informed(MACAddress)
    case nak(reason: String, MACAddress)
    case released(IPv4Address)
    case declined(IPv4Address)
    /// A request the server does not answer (another server chosen, no free address, …).
    case ignored(reason: String)
}

/// What `claim` decided about an address a guest used.
public enum DHCPClaim: Equatable, Sendable {
    /// The port holds the address already.
    case held
    /// The address was free and is the port's now, taken by use.
    case taken
    /// The same MAC's binding came back from a port that is gone (see `takeMoves`).
    case returned
    /// Another port or client holds it, or the port has all the bindings it may.
    case refused
}

/// A DHCP server's state: its bindings and the addresses declined by clients.
public struct DHCPServer: Sendable {
    public var configuration: DHCPServerConfiguration
    /// Bindings by address.
    private var table: [IPv4Address: DHCPServerLease] = [:]
    /// The address of each client's binding.
    private var clients: [ClientKey: IPv4Address] = [:]
    /// Bindings held by each port.
    private var portCounts: [PortID: Int] = [:]
    /// Ports that went away, and when; a port not here is live.
    private var departed: [PortID: ContinuousClock.Instant] = [:]
    /// Bindings taken over from a port that is gone, until `takeMoves`.
    private var moves: [(lease: DHCPServerLease, from: PortID)] = []
    /// Addresses a client said are in use (DECLINE), kept out of the pool until the instant given.
    public private(set) var declined: [IPv4Address: ContinuousClock.Instant] = [:]
    /// The MAC each static address is reserved for.
    private let staticOwners: [IPv4Address: MACAddress]
    private var sweptAt: ContinuousClock.Instant?

    public init(configuration: DHCPServerConfiguration) {
        self.configuration = configuration
        staticOwners = Dictionary(configuration.staticBindings.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
    }

    /// Every binding, by address.
    public var leases: [DHCPServerLease] {
        table.values.sorted { $0.address < $1.address }
    }

    /// The binding of `address`, if it has one that has not expired.
    public func lease(at address: IPv4Address, now: ContinuousClock.Instant) -> DHCPServerLease? {
        guard let lease = table[address], lease.expires > now else { return nil }
        return lease
    }

    /// The binding of `address`, expired or not (until it is swept): where
    /// its guest was last.
    public func holder(of address: IPv4Address) -> DHCPServerLease? { table[address] }

    /// The MAC a static binding reserves `address` for.
    public func staticOwner(of address: IPv4Address) -> MACAddress? { staticOwners[address] }

    /// Bindings held by `port`.
    public func leaseCount(on port: PortID) -> Int { portCounts[port, default: 0] }

    /// Whether a binding went to a new port since the last `takeMoves`.
    var hasMoves: Bool { !moves.isEmpty }

    /// The bindings that went to a new port since the last call (a guest
    /// that came back), each with the port it left.
    public mutating func takeMoves() -> [(lease: DHCPServerLease, from: PortID)] {
        defer { moves.removeAll() }
        return moves
    }

    /// `mac` appeared on `port`: the bindings it left on ports that are gone
    /// come with it (a forwarder that reconnected, with or without asking
    /// DHCP), as many as the port may hold.
    public mutating func takeBack(mac: MACAddress, to port: PortID) {
        guard !departed.isEmpty else { return }
        for lease in table.values where lease.mac == mac && departed[lease.port] != nil {
            guard portCounts[port, default: 0] < configuration.maximumLeasesPerPort else { return }
            move(lease.address, to: port)
        }
    }

    /// A port went away: its bindings stay for the guest to take back, and
    /// become reclaimable when the pool runs dry.
    public mutating func detach(_ port: PortID, now: ContinuousClock.Instant) {
        if portCounts[port] != nil { departed[port] = now }
    }

    /// Answers a BOOTREQUEST that arrived on switch port `port`.
    public mutating func handle(_ request: DHCPMessage, from port: PortID, now: ContinuousClock.Instant)
        -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        guard request.operation == .request, let mac = request.clientMAC else {
            return (nil, .ignored(reason: "not an Ethernet BOOTREQUEST"))
        }
        sweep(now: now)
        let key = ClientKey(mac: mac, clientIdentifier: request.options.clientIdentifier)
        switch request.messageType {
        case .discover:
            return discover(request, key: key, mac: mac, port: port, now: now)
        case .request:
            return self.request(request, key: key, mac: mac, port: port, now: now)
        case .release:
            guard let lease = lease(at: request.clientAddress, now: now), key.owns(lease, mac: mac), lease.port == port else {
                return (nil, .ignored(reason: "release of \(request.clientAddress) not bound to \(mac) on \(port)"))
            }
            remove(lease.address)
            return (nil, .released(lease.address))
        case .decline:
            guard let address = request.options.requestedIPAddress else {
                return (nil, .ignored(reason: "decline without an address"))
            }
            guard let lease = lease(at: address, now: now), key.owns(lease, mac: mac), lease.port == port else {
                return (nil, .ignored(reason: "decline of \(address) not offered to \(mac) on \(port)"))
            }
            remove(address)
            declined[address] = now + configuration.declineHold
            return (nil, .declined(address))
        case .inform:
            var reply = makeReply(to: request, type: .ack, address: .any)
            reply.options.leaseTime = nil
            reply.options.renewalTime = nil
            reply.options.rebindingTime = nil
            return (reply, .informed(mac))
        default:
            return (nil, .ignored(reason: "\(request.messageType.map { "\($0)" } ?? "BOOTP") is not a client message"))
        }
    }

    /// A guest on `port` sends from `address` with source MAC `mac`: whether
    /// it may, binding the address to the port when it is free (see the top).
    public mutating func claim(_ address: IPv4Address, mac: MACAddress, port: PortID,
                               now: ContinuousClock.Instant) -> DHCPClaim {
        if let lease = table[address], lease.expires > now {
            if lease.port == port { return .held }
            guard departed[lease.port] != nil, lease.mac == mac, portCounts[port, default: 0] < configuration.maximumLeasesPerPort
            else { return .refused }
            move(address, to: port)
            return .returned
        }
        if let owner = staticOwners[address] { return owner == mac ? .held : .refused }
        sweep(now: now)
        guard isAssignable(address, now: now), portCounts[port, default: 0] < configuration.maximumLeasesPerPort else { return .refused }
        insert(DHCPServerLease(address: address, mac: mac, clientIdentifier: nil, hostName: nil, state: .bound,
                               expires: now + .seconds(Int64(configuration.leaseTime)), port: port, takenByUse: true))
        return .taken
    }

    // MARK: Messages

    private mutating func discover(_ request: DHCPMessage, key: ClientKey, mac: MACAddress, port: PortID,
                                   now: ContinuousClock.Instant) -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        if let existing = binding(of: key, mac: mac, now: now) {
            guard usable(existing, mac: mac, port: port) else {
                return (nil, .ignored(reason: "\(mac): its client's binding is held on another port"))
            }
            if existing.port != port {
                guard portCounts[port, default: 0] < configuration.maximumLeasesPerPort else {
                    return (nil, .ignored(reason: "\(port) holds \(configuration.maximumLeasesPerPort) bindings already"))
                }
                move(existing.address, to: port)
            }
            if existing.state == .offered { table[existing.address]?.expires = now + configuration.offerHold }
            return (makeReply(to: request, type: .offer, address: existing.address), .offered(existing.address, mac))
        }
        guard portCounts[port, default: 0] < configuration.maximumLeasesPerPort else {
            return (nil, .ignored(reason: "\(port) holds \(configuration.maximumLeasesPerPort) bindings already"))
        }
        guard let address = choose(for: mac, requested: request.options.requestedIPAddress, now: now) else {
            return (nil, .ignored(reason: "no free address for \(mac)"))
        }
        insert(DHCPServerLease(address: address, mac: mac, clientIdentifier: key.identifier,
                               hostName: request.options.hostName, state: .offered,
                               expires: now + configuration.offerHold, port: port))
        return (makeReply(to: request, type: .offer, address: address), .offered(address, mac))
    }

    private mutating func request(_ request: DHCPMessage, key: ClientKey, mac: MACAddress, port: PortID,
                                  now: ContinuousClock.Instant) -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        let options = request.options
        let address: IPv4Address
        if let server = options.serverIdentifier {
            // SELECTING: the client answers an offer.
            guard server == configuration.serverAddress else {
                if let offer = binding(of: key, mac: mac, now: now), offer.state == .offered, offer.port == port { remove(offer.address) }
                return (nil, .ignored(reason: "client chose server \(server)"))
            }
            guard let requested = options.requestedIPAddress else {
                return nak(request, "REQUEST without a requested address", mac)
            }
            address = requested
        } else if let requested = options.requestedIPAddress, request.clientAddress == .any {
            // INIT-REBOOT: the client wants the address it had.
            address = requested
        } else if request.clientAddress != .any {
            // RENEWING or REBINDING.
            address = request.clientAddress
        } else {
            return nak(request, "REQUEST names no address", mac)
        }
        guard configuration.contains(address) else { return nak(request, "\(address) is not in this subnet", mac) }
        if let owner = staticOwners[address], owner != mac {
            return nak(request, "\(address) is reserved for \(owner)", mac)
        }
        if let fixed = configuration.staticBindings[mac], fixed != address {
            return nak(request, "\(mac) has the static address \(fixed)", mac)
        }
        let holder = lease(at: address, now: now)
        if let holder {
            guard key.owns(holder, mac: mac) else { return nak(request, "\(address) is bound to \(holder.mac)", mac) }
            guard usable(holder, mac: mac, port: port) else {
                return nak(request, "\(address) is bound to \(holder.mac) on another port", mac)
            }
        } else {
            guard staticOwners[address] == mac || isAssignable(address, now: now) else {
                return nak(request, "\(address) cannot be assigned", mac)
            }
        }
        if let other = binding(of: key, mac: mac, now: now), other.address != address {
            guard usable(other, mac: mac, port: port) else {
                return nak(request, "\(mac): its client's binding is held on another port", mac)
            }
            remove(other.address)
        }
        if holder?.port != port, portCounts[port, default: 0] >= configuration.maximumLeasesPerPort {
            return nak(request, "\(port) holds \(configuration.maximumLeasesPerPort) bindings already", mac)
        }
        if holder != nil { remove(address) }
        insert(DHCPServerLease(address: address, mac: mac, clientIdentifier: key.identifier,
                               hostName: options.hostName ?? holder?.hostName, state: .bound,
                               expires: now + .seconds(Int64(configuration.leaseTime)), port: port))
        return (makeReply(to: request, type: .ack, address: address), .acknowledged(address, mac))
    }

    private func nak(_ request: DHCPMessage, _ reason: String, _ mac: MACAddress)
        -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        var reply = DHCPMessage(operation: .reply, transactionID: request.transactionID, clientMAC: mac)
        reply.clientHardwareAddress = request.clientHardwareAddress
        reply.relayAddress = request.relayAddress
        reply.flags = request.flags
        reply.options.messageType = .nak
        reply.options.serverIdentifier = configuration.serverAddress
        reply.options[.message] = Array(reason.utf8)
        return (reply, .nak(reason: reason, mac))
    }

    private func makeReply(to request: DHCPMessage, type: DHCPMessageType, address: IPv4Address) -> DHCPMessage {
        var reply = DHCPMessage(operation: .reply, transactionID: request.transactionID, clientMAC: .zero)
        reply.hardwareType = request.hardwareType
        reply.clientHardwareAddress = request.clientHardwareAddress
        reply.flags = request.flags
        reply.relayAddress = request.relayAddress
        reply.clientAddress = type == .ack && address == .any ? request.clientAddress : .any
        reply.yourAddress = address
        reply.serverAddress = configuration.serverAddress
        var options = DHCPOptions()
        options.messageType = type
        options.serverIdentifier = configuration.serverAddress
        options.leaseTime = configuration.leaseTime
        options.renewalTime = configuration.leaseTime / 2
        options.rebindingTime = UInt32(UInt64(configuration.leaseTime) * 7 / 8)
        options.subnetMask = IPv4Address.mask(prefixLength: configuration.prefixLength)
        if let router = configuration.router { options.routers = [router] }
        options.domainNameServers = configuration.dnsServers
        if let mtu = configuration.mtu { options.interfaceMTU = UInt16(clamping: mtu) }
        options.domainSearch = configuration.searchDomains
        reply.options = options
        return reply
    }

    // MARK: The table

    /// Who a binding belongs to: the client identifier when sent, else the MAC.
    private enum ClientKey: Hashable {
        case identifier([UInt8])
        case mac(MACAddress)

        init(mac: MACAddress, clientIdentifier: [UInt8]?) {
            self = clientIdentifier.map { .identifier($0) } ?? .mac(mac)
        }

        init(_ lease: DHCPServerLease) {
            self.init(mac: lease.mac, clientIdentifier: lease.clientIdentifier)
        }

        var identifier: [UInt8]? {
            if case .identifier(let bytes) = self { return bytes }
            return nil
        }

        /// Whether the binding is this client's: by identifier when both
        /// have one, else by MAC (a binding taken by use has no identifier).
        func owns(_ lease: DHCPServerLease, mac: MACAddress) -> Bool {
            if let mine = identifier, let theirs = lease.clientIdentifier { return mine == theirs }
            return lease.mac == mac
        }
    }

    /// The client's binding, if it has one that has not expired: by its
    /// key, or one its MAC took by use.
    private func binding(of key: ClientKey, mac: MACAddress, now: ContinuousClock.Instant) -> DHCPServerLease? {
        if let found = clients[key].flatMap({ lease(at: $0, now: now) }) { return found }
        guard key != .mac(mac), let taken = clients[.mac(mac)].flatMap({ lease(at: $0, now: now) }),
              taken.clientIdentifier == nil else { return nil }
        return taken
    }

    /// Whether a request from `mac` on `port` may use the client's binding:
    /// it is on this port, or on a port that is gone and for the same MAC.
    private func usable(_ lease: DHCPServerLease, mac: MACAddress, port: PortID) -> Bool {
        lease.port == port || (departed[lease.port] != nil && lease.mac == mac)
    }

    private mutating func insert(_ lease: DHCPServerLease) {
        if let previous = table[lease.address] { forget(previous) }
        table[lease.address] = lease
        if !lease.takenByUse || clients[ClientKey(lease)] == nil { clients[ClientKey(lease)] = lease.address }
        portCounts[lease.port, default: 0] += 1
    }

    private mutating func remove(_ address: IPv4Address) {
        guard let lease = table.removeValue(forKey: address) else { return }
        forget(lease)
    }

    /// Drops a binding from the indexes (not from the table).
    private mutating func forget(_ lease: DHCPServerLease) {
        let key = ClientKey(lease)
        if clients[key] == lease.address { clients[key] = nil }
        let left = portCounts[lease.port, default: 1] - 1
        portCounts[lease.port] = left > 0 ? left : nil
        if left <= 0 { departed[lease.port] = nil }
    }

    /// Puts a binding on another port.
    private mutating func move(_ address: IPv4Address, to port: PortID) {
        guard var lease = table[address], lease.port != port else { return }
        let from = lease.port
        remove(address)
        lease.port = port
        insert(lease)
        moves.append((lease, from))
    }

    /// Removes expired bindings and declines, at most once a second.
    private mutating func sweep(now: ContinuousClock.Instant) {
        if let sweptAt, now - sweptAt < .seconds(1), now >= sweptAt { return }
        sweptAt = now
        for (address, lease) in table where lease.expires <= now { remove(address) }
        declined = declined.filter { $0.value > now }
    }

    /// The address to offer: the client's static address, the one it asks
    /// for if free, the next free one of the pool, or one reclaimed from a
    /// port that is gone.
    private mutating func choose(for mac: MACAddress, requested: IPv4Address?, now: ContinuousClock.Instant) -> IPv4Address? {
        if let fixed = configuration.staticBindings[mac] {
            guard let holder = lease(at: fixed, now: now) else { return fixed }
            return holder.mac == mac && departed[holder.port] != nil ? fixed : nil
        }
        if let requested, configuration.pool.contains(requested.rawValue), isAssignable(requested, now: now) { return requested }
        for raw in configuration.pool where isAssignable(IPv4Address(rawValue: raw), now: now) {
            return IPv4Address(rawValue: raw)
        }
        return reclaim()
    }

    /// Frees a pool binding of the port gone longest, for a new client.
    private mutating func reclaim() -> IPv4Address? {
        let gone = table.values.filter { departed[$0.port] != nil && configuration.pool.contains($0.address.rawValue) }
        guard let victim = gone.min(by: { (departed[$0.port]!, $0.address) < (departed[$1.port]!, $1.address) }) else {
            return nil
        }
        remove(victim.address)
        return victim.address
    }

    /// Free to hand out: in the subnet, not reserved, declined, static or bound.
    private func isAssignable(_ address: IPv4Address, now: ContinuousClock.Instant) -> Bool {
        guard configuration.contains(address), !configuration.reserved.contains(address), staticOwners[address] == nil
        else { return false }
        if let until = declined[address], until > now { return false }
        return lease(at: address, now: now) == nil
    }
}
