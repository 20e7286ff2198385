// A DHCPv4 server for one virtual subnet (RFC 2131 §4.3), sans I/O.
//
// Addresses come from static bindings (by MAC) first, then from a pool.
// Bindings are keyed by the client identifier (option 61) when a client
// sends one, else by its MAC, and outlive the client's connection, so a guest
// that reconnects gets its address back. The server is authoritative for its
// subnet: a request for an address outside it, or bound to someone else, is
// NAKed; an INIT-REBOOT request for a free address it has no record of is
// granted, as dnsmasq's authoritative mode does.
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

/// A DHCP server's state: its bindings and the addresses declined by clients.
public struct DHCPServer: Sendable {
    public var configuration: DHCPServerConfiguration
    public private(set) var leases: [DHCPServerLease] = []
    /// Addresses a client said are in use (DECLINE), kept out of the pool until the instant given.
    public private(set) var declined: [IPv4Address: ContinuousClock.Instant] = [:]

    public init(configuration: DHCPServerConfiguration) {
        self.configuration = configuration
    }

    /// Answers a BOOTREQUEST from the client with MAC `mac`.
    public mutating func handle(_ request: DHCPMessage, now: ContinuousClock.Instant)
        -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        guard request.operation == .request, let mac = request.clientMAC else {
            return (nil, .ignored(reason: "not an Ethernet BOOTREQUEST"))
        }
        expire(now: now)
        let key = Key(mac: mac, clientIdentifier: request.options.clientIdentifier)
        switch request.messageType {
        case .discover:
            return discover(request, key: key, now: now)
        case .request:
            return self.request(request, key: key, now: now)
        case .release:
            if let index = leases.firstIndex(where: { key.matches($0) && $0.address == request.clientAddress }) {
                let address = leases.remove(at: index).address
                return (nil, .released(address))
            }
            return (nil, .ignored(reason: "release of \(request.clientAddress) not bound to \(mac)"))
        case .decline:
            guard let address = request.options.requestedIPAddress else {
                return (nil, .ignored(reason: "decline without an address"))
            }
            leases.removeAll { key.matches($0) && $0.address == address }
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

    // MARK: Messages

    private mutating func discover(_ request: DHCPMessage, key: Key, now: ContinuousClock.Instant)
        -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        guard let address = choose(for: key, requested: request.options.requestedIPAddress) else {
            return (nil, .ignored(reason: "no free address for \(key.mac)"))
        }
        bind(address, key: key, hostName: request.options.hostName, state: .offered,
             until: now + configuration.offerHold, keepingBound: true)
        return (makeReply(to: request, type: .offer, address: address), .offered(address, key.mac))
    }

    private mutating func request(_ request: DHCPMessage, key: Key, now: ContinuousClock.Instant)
        -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        let options = request.options
        let bound = leases.first { key.matches($0) }
        let address: IPv4Address
        if let server = options.serverIdentifier {
            // SELECTING: the client answers an offer.
            guard server == configuration.serverAddress else {
                leases.removeAll { key.matches($0) && $0.state == .offered }
                return (nil, .ignored(reason: "client chose server \(server)"))
            }
            guard let requested = options.requestedIPAddress else {
                return nak(request, "REQUEST without a requested address", key)
            }
            address = requested
        } else if let requested = options.requestedIPAddress, request.clientAddress == .any {
            // INIT-REBOOT: the client wants the address it had.
            address = requested
        } else if request.clientAddress != .any {
            // RENEWING or REBINDING.
            address = request.clientAddress
        } else {
            return nak(request, "REQUEST names no address", key)
        }
        guard configuration.contains(address) else { return nak(request, "\(address) is not in this subnet", key) }
        if let holder = leases.first(where: { $0.address == address && !key.matches($0) }) {
            return nak(request, "\(address) is bound to \(holder.mac)", key)
        }
        if let owner = configuration.staticBindings.first(where: { $0.value == address })?.key, owner != key.mac {
            return nak(request, "\(address) is reserved for \(owner)", key)
        }
        if let fixed = configuration.staticBindings[key.mac], fixed != address {
            return nak(request, "\(key.mac) has the static address \(fixed)", key)
        }
        let ownStatic = configuration.staticBindings[key.mac] == address
        if !ownStatic, bound?.address != address {
            guard isAssignable(address) else { return nak(request, "\(address) cannot be assigned", key) }
        }
        bind(address, key: key, hostName: options.hostName ?? bound?.hostName, state: .bound,
             until: now + .seconds(Int64(configuration.leaseTime)), keepingBound: false)
        return (makeReply(to: request, type: .ack, address: address), .acknowledged(address, key.mac))
    }

    private func nak(_ request: DHCPMessage, _ reason: String, _ key: Key)
        -> (reply: DHCPMessage?, event: DHCPServerEvent) {
        var reply = DHCPMessage(operation: .reply, transactionID: request.transactionID, clientMAC: key.mac)
        reply.clientHardwareAddress = request.clientHardwareAddress
        reply.relayAddress = request.relayAddress
        reply.flags = request.flags
        reply.options.messageType = .nak
        reply.options.serverIdentifier = configuration.serverAddress
        reply.options[.message] = Array(reason.utf8)
        return (reply, .nak(reason: reason, key.mac))
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
    private struct Key {
        let mac: MACAddress
        let clientIdentifier: [UInt8]?

        func matches(_ lease: DHCPServerLease) -> Bool {
            if let clientIdentifier, let other = lease.clientIdentifier { return clientIdentifier == other }
            return lease.mac == mac
        }
    }

    private mutating func expire(now: ContinuousClock.Instant) {
        leases.removeAll { $0.expires <= now }
        declined = declined.filter { $0.value > now }
    }

    /// The address to offer: the client's binding, its static address, the
    /// one it asks for if free, or the first free one of the pool.
    private func choose(for key: Key, requested: IPv4Address?) -> IPv4Address? {
        if let fixed = configuration.staticBindings[key.mac] { return fixed }
        if let existing = leases.first(where: { key.matches($0) }) { return existing.address }
        if let requested, configuration.pool.contains(requested.rawValue), isAssignable(requested) { return requested }
        for raw in configuration.pool {
            let candidate = IPv4Address(rawValue: raw)
            if isAssignable(candidate) { return candidate }
        }
        return nil
    }

    /// Free to hand out: in the subnet, not reserved, declined, static or bound.
    private func isAssignable(_ address: IPv4Address) -> Bool {
        configuration.contains(address) && !configuration.reserved.contains(address) && declined[address] == nil
            && !configuration.staticBindings.values.contains(address) && !leases.contains { $0.address == address }
    }

    private mutating func bind(_ address: IPv4Address, key: Key, hostName: String?, state: DHCPServerLease.State,
                               until expires: ContinuousClock.Instant, keepingBound: Bool) {
        if let index = leases.firstIndex(where: { key.matches($0) }) {
            if keepingBound, leases[index].state == .bound, leases[index].address == address { return }
            leases[index] = DHCPServerLease(address: address, mac: key.mac, clientIdentifier: key.clientIdentifier,
                                            hostName: hostName, state: state, expires: expires)
        } else {
            leases.append(DHCPServerLease(address: address, mac: key.mac, clientIdentifier: key.clientIdentifier,
                                          hostName: hostName, state: state, expires: expires))
        }
    }
}
