// A DHCPv4 client (RFC 2131 §4.4), sans I/O.
//
// The driver feeds it frames from the network (`receive`), the passing of
// time (`tick`, at `nextDeadline`), and link events (`start`, `linkRestored`,
// `release`); it answers with actions: frames to send, a lease to apply or
// to remove, and events to log. It owns no socket and reads no clock, so the
// tests drive every transition with recorded server replies and a fake clock.
//
// States, as in RFC 2131 figure 5:
//
//   INIT ──DISCOVER──▶ SELECTING ──OFFER/REQUEST──▶ REQUESTING ──ACK──▶ BOUND
//     ▲                                   │NAK, no answer            │ T1
//     └───────────────────────────────────┘                          ▼
//   INIT-REBOOT ──REQUEST(50)──▶ REBOOTING ──ACK──▶ BOUND ◀──ACK── RENEWING
//                                                      ▲            │ T2
//                                                      └──ACK── REBINDING ──expiry──▶ INIT
//
// Retransmissions back off exponentially from 4 s to 64 s with ±1 s of
// jitter (§4.1); in RENEWING and REBINDING the wait is half the time left to
// T2 or to expiry, at least 60 s (§4.4.5), but never past the deadline.
import SovnetTime
import SovnetWire

/// The configuration of a DHCP client.
public struct DHCPClientConfiguration: Sendable {
    public var mac: MACAddress
    public var hostName: String?
    /// Option 61; by default the hardware type (1) and the MAC.
    public var clientIdentifier: [UInt8]
    public var requestedOptions: [DHCPOptionCode]
    /// First retransmission delay, doubled up to `maximumRetransmitDelay`.
    public var initialRetransmitDelay: Duration
    public var maximumRetransmitDelay: Duration
    /// REQUESTs sent in REQUESTING or REBOOTING before starting over.
    public var requestAttempts: Int

    public static let defaultRequestedOptions: [DHCPOptionCode] = [
        .subnetMask, .router, .domainNameServer, .domainName, .interfaceMTU, .leaseTime,
        .serverIdentifier, .renewalTime, .rebindingTime, .domainSearch,
    ]

    public init(mac: MACAddress, hostName: String? = nil) {
        self.mac = mac
        self.hostName = hostName
        clientIdentifier = [1] + mac.octets
        requestedOptions = Self.defaultRequestedOptions
        initialRetransmitDelay = .seconds(4)
        maximumRetransmitDelay = .seconds(64)
        requestAttempts = 4
    }
}

/// The states of RFC 2131 figure 5.
public enum DHCPClientState: String, Sendable {
    case initial = "INIT", selecting = "SELECTING", requesting = "REQUESTING", rebooting = "REBOOTING"
    case bound = "BOUND", renewing = "RENEWING", rebinding = "REBINDING", stopped = "STOPPED"
}

/// Something the driver must do for the client.
public enum DHCPClientAction: Equatable, Sendable {
    /// Put this Ethernet frame on the network.
    case send([UInt8])
    /// Configure the interface from this lease (replacing `previous`, if any).
    case apply(DHCPLease, previous: DHCPLease?)
    /// Remove this lease's address and routes.
    case remove(DHCPLease)
    /// Something worth a log line.
    case event(DHCPClientEvent)
}

/// What happened, for the log.
public enum DHCPClientEvent: Equatable, Sendable, CustomStringConvertible {
    case stateChanged(from: DHCPClientState, to: DHCPClientState)
    case bound(DHCPLease, elapsed: Duration)
    case renewed(DHCPLease)
    case nak(server: IPv4Address, message: String?)
    case expired(IPv4Address)
    case ignored(reason: String)
    case released(IPv4Address)

    public var description: String {
        switch self {
        case .stateChanged(let from, let to): "DHCP \(from.rawValue) -> \(to.rawValue)"
        case .bound(let lease, let elapsed):
            "lease obtained: \(lease.address)/\(lease.prefixLength) router \(lease.router.map { "\($0)" } ?? "none") "
                + "dns \(lease.dnsServers.map { $0.description }.joined(separator: ",")) lease \(lease.leaseTime)s "
                + "from \(lease.server) in \(Self.milliseconds(elapsed)) ms"
        case .renewed(let lease): "lease renewed: \(lease.address) for \(lease.leaseTime)s"
        case .nak(let server, let message): "DHCPNAK from \(server)" + (message.map { ": \($0)" } ?? "")
        case .expired(let address): "lease on \(address) expired"
        case .ignored(let reason): "ignored DHCP reply: \(reason)"
        case .released(let address): "released \(address)"
        }
    }

    static func milliseconds(_ duration: Duration) -> String {
        let micro = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        let fraction = String(micro % 1000)
        return "\(micro / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// A DHCPv4 client for one interface.
public struct DHCPClient: Sendable {
    public let configuration: DHCPClientConfiguration
    public private(set) var state: DHCPClientState = .initial
    /// The lease in force, if any.
    public private(set) var lease: DHCPLease?
    /// When `tick` must next be called; nil when nothing is pending.
    public private(set) var nextDeadline: MonotonicInstant?

    private var random: SplitMix
    private var transactionID: UInt32 = 0
    /// When the current exchange began (`secs` and the lease's start).
    private var exchangeStart: MonotonicInstant?
    private var requestSentAt: MonotonicInstant?
    private var attempts = 0
    private var retransmitDelay: Duration = .zero
    /// The offer being requested in REQUESTING.
    private var offer: (address: IPv4Address, server: IPv4Address)?

    public init(configuration: DHCPClientConfiguration, seed: UInt64) {
        self.configuration = configuration
        random = SplitMix(seed: seed)
    }

    // MARK: Events

    /// Starts: INIT-REBOOT when a lease is held, INIT otherwise.
    public mutating func start(now: MonotonicInstant) -> [DHCPClientAction] {
        var actions: [DHCPClientAction] = []
        if let lease, now < lease.expiresAt {
            beginExchange(now: now)
            transition(to: .rebooting, &actions)
            actions.append(.send(request(kind: .rebooting, now: now)))
            scheduleRetransmit(now: now)
        } else {
            discover(now: now, &actions)
        }
        return actions
    }

    /// The connection to the server came back: re-confirm the lease (INIT-REBOOT).
    public mutating func linkRestored(now: MonotonicInstant) -> [DHCPClientAction] {
        guard state != .stopped else { return [] }
        return start(now: now)
    }

    /// Releases the lease (on a clean shutdown) and stops.
    public mutating func release(now: MonotonicInstant) -> [DHCPClientAction] {
        var actions: [DHCPClientAction] = []
        if let lease, [.bound, .renewing, .rebinding].contains(state) {
            transactionID = random.next32()
            var message = baseMessage(now: now)
            message.clientAddress = lease.address
            message.options.messageType = .release
            message.options.serverIdentifier = lease.server
            actions.append(.send(frame(message, from: lease.address, to: lease.server, mac: lease.serverMAC)))
            actions.append(.remove(lease))
            actions.append(.event(.released(lease.address)))
            self.lease = nil
        }
        transition(to: .stopped, &actions)
        nextDeadline = nil
        return actions
    }

    /// Handles timers due at or before `now`.
    public mutating func tick(now: MonotonicInstant) -> [DHCPClientAction] {
        guard let deadline = nextDeadline, now >= deadline else { return [] }
        var actions: [DHCPClientAction] = []
        switch state {
        case .initial:
            discover(now: now, &actions)
        case .selecting:
            actions.append(.send(discoverFrame(now: now)))
            scheduleRetransmit(now: now)
        case .requesting, .rebooting:
            if attempts >= configuration.requestAttempts {
                discover(now: now, &actions)
            } else {
                actions.append(.send(request(kind: state, now: now)))
                scheduleRetransmit(now: now)
            }
        case .bound, .renewing, .rebinding:
            guard let lease else { return actions }
            if now >= lease.expiresAt {
                actions.append(.remove(lease))
                actions.append(.event(.expired(lease.address)))
                self.lease = nil
                discover(now: now, &actions)
            } else if now >= lease.rebindAt {
                extend(.rebinding, until: lease.expiresAt, now: now, &actions)
            } else if now >= lease.renewAt {
                extend(.renewing, until: lease.rebindAt, now: now, &actions)
            } else {
                nextDeadline = lease.renewAt
            }
        case .stopped:
            nextDeadline = nil
        }
        return actions
    }

    /// Handles a frame from the network. Returns nil when the frame is not a
    /// DHCP reply for this client (the driver passes it on), or the actions.
    public mutating func receive(_ frame: UnsafeRawBufferPointer, now: MonotonicInstant) -> [DHCPClientAction]? {
        guard let reply = Self.dhcpReply(in: frame, for: configuration.mac) else { return nil }
        var actions: [DHCPClientAction] = []
        let (message, serverMAC) = reply
        guard message.transactionID == transactionID else {
            actions.append(.event(.ignored(reason: "xid 0x\(String(message.transactionID, radix: 16)) is not ours")))
            return actions
        }
        guard message.clientMAC == configuration.mac else {
            actions.append(.event(.ignored(reason: "chaddr is not our MAC")))
            return actions
        }
        switch (state, message.messageType) {
        case (.selecting, .offer):
            handleOffer(message, now: now, &actions)
        case (.requesting, .ack), (.rebooting, .ack), (.renewing, .ack), (.rebinding, .ack):
            handleAck(message, serverMAC: serverMAC, now: now, &actions)
        case (.requesting, .nak), (.rebooting, .nak), (.renewing, .nak), (.rebinding, .nak):
            handleNak(message, now: now, &actions)
        default:
            actions.append(.event(.ignored(reason: "\(message.messageType.map { "\($0)" } ?? "BOOTP") in \(state.rawValue)")))
        }
        return actions
    }

    // MARK: Transitions

    private mutating func discover(now: MonotonicInstant, _ actions: inout [DHCPClientAction]) {
        beginExchange(now: now)
        offer = nil
        transition(to: .selecting, &actions)
        actions.append(.send(discoverFrame(now: now)))
        scheduleRetransmit(now: now)
    }

    private mutating func handleOffer(_ message: DHCPMessage, now: MonotonicInstant,
                                      _ actions: inout [DHCPClientAction]) {
        if let problem = Self.problem(with: message, expecting: nil) {
            actions.append(.event(.ignored(reason: "offer: \(problem)")))
            return
        }
        guard let server = message.options.serverIdentifier else { return }
        offer = (message.yourAddress, server)
        transition(to: .requesting, &actions)
        attempts = 0
        retransmitDelay = .zero
        actions.append(.send(request(kind: .requesting, now: now)))
        scheduleRetransmit(now: now)
    }

    private mutating func handleAck(_ message: DHCPMessage, serverMAC: MACAddress, now: MonotonicInstant,
                                    _ actions: inout [DHCPClientAction]) {
        let expected: IPv4Address? = switch state {
        case .requesting: offer?.address
        default: lease?.address
        }
        if let problem = Self.problem(with: message, expecting: expected) {
            actions.append(.event(.ignored(reason: "ACK: \(problem)")))
            return
        }
        let start = requestSentAt ?? now
        let newLease = Self.lease(from: message, serverMAC: serverMAC, start: start)
        let previous = lease
        let wasRenewal = state == .renewing || state == .rebinding
        lease = newLease
        transition(to: .bound, &actions)
        if previous == nil || !(previous!.sameConfiguration(as: newLease)) {
            actions.append(.apply(newLease, previous: previous))
        }
        if wasRenewal {
            actions.append(.event(.renewed(newLease)))
        } else {
            actions.append(.event(.bound(newLease, elapsed: now - (exchangeStart ?? now))))
        }
        nextDeadline = newLease.renewAt
        offer = nil
    }

    private mutating func handleNak(_ message: DHCPMessage, now: MonotonicInstant,
                                    _ actions: inout [DHCPClientAction]) {
        let server = message.options.serverIdentifier ?? .any
        let text = message.options[.message].map { String(decoding: $0, as: UTF8.self) }
        actions.append(.event(.nak(server: server, message: text)))
        if let lease {
            actions.append(.remove(lease))
            self.lease = nil
        }
        // RFC 2131 §3.1 step 5: after a NAK, restart; wait a little to avoid a storm.
        offer = nil
        transition(to: .initial, &actions)
        nextDeadline = now + .milliseconds(Int64(100 + random.next32() % 900))
    }

    private mutating func transition(to next: DHCPClientState, _ actions: inout [DHCPClientAction]) {
        guard next != state else { return }
        actions.append(.event(.stateChanged(from: state, to: next)))
        state = next
    }

    /// A new transaction: a fresh xid, and retransmissions counted from zero.
    private mutating func beginExchange(now: MonotonicInstant) {
        transactionID = random.next32()
        exchangeStart = now
        attempts = 0
        retransmitDelay = .zero
    }

    /// §4.1: 4 s, 8 s, … 64 s, each ±1 s.
    private mutating func scheduleRetransmit(now: MonotonicInstant) {
        attempts += 1
        retransmitDelay = retransmitDelay == .zero
            ? configuration.initialRetransmitDelay
            : min(retransmitDelay * 2, configuration.maximumRetransmitDelay)
        let jitter = Duration.milliseconds(Int64(random.next32() % 2001) - 1000)
        nextDeadline = now + max(retransmitDelay + jitter, .milliseconds(100))
    }

    /// Enters RENEWING or REBINDING (a new exchange) if not there yet, sends
    /// a REQUEST and schedules the next one before `until`.
    private mutating func extend(_ next: DHCPClientState, until: MonotonicInstant, now: MonotonicInstant,
                                 _ actions: inout [DHCPClientAction]) {
        if state != next {
            transition(to: next, &actions)
            beginExchange(now: now)
        }
        actions.append(.send(request(kind: next, now: now)))
        scheduleLeaseRetransmit(now: now, until: until)
    }

    /// §4.4.5: half the time remaining until `until`, at least 60 s, never past it.
    private mutating func scheduleLeaseRetransmit(now: MonotonicInstant, until: MonotonicInstant) {
        let half = (until - now) / 2
        nextDeadline = min(now + max(half, .seconds(60)), until)
    }

    // MARK: Messages

    private enum RequestKind {
        case requesting, rebooting, renewing, rebinding
    }

    private func baseMessage(now: MonotonicInstant) -> DHCPMessage {
        var message = DHCPMessage(operation: .request, transactionID: transactionID, clientMAC: configuration.mac)
        if let start = exchangeStart {
            message.seconds = UInt16(clamping: (now - start).components.seconds)
        }
        message.options.clientIdentifier = configuration.clientIdentifier
        return message
    }

    private mutating func discoverFrame(now: MonotonicInstant) -> [UInt8] {
        var message = baseMessage(now: now)
        message.options.messageType = .discover
        if let lease { message.options.requestedIPAddress = lease.address }
        addRequestOptions(&message)
        return frame(message, from: .any, to: .broadcast, mac: .broadcast)
    }

    private mutating func request(kind: DHCPClientState, now: MonotonicInstant) -> [UInt8] {
        requestSentAt = now
        var message = baseMessage(now: now)
        message.options.messageType = .request
        addRequestOptions(&message)
        switch kind {
        case .requesting:
            message.options.requestedIPAddress = offer?.address
            message.options.serverIdentifier = offer?.server
            return frame(message, from: .any, to: .broadcast, mac: .broadcast)
        case .rebooting:
            message.options.requestedIPAddress = lease?.address
            return frame(message, from: .any, to: .broadcast, mac: .broadcast)
        case .renewing:
            guard let lease else { return [] }
            message.clientAddress = lease.address
            return frame(message, from: lease.address, to: lease.server, mac: lease.serverMAC)
        default:
            guard let lease else { return [] }
            message.clientAddress = lease.address
            return frame(message, from: lease.address, to: .broadcast, mac: .broadcast)
        }
    }

    private func addRequestOptions(_ message: inout DHCPMessage) {
        message.options.parameterRequestList = configuration.requestedOptions
        if let hostName = configuration.hostName, !hostName.isEmpty { message.options.hostName = hostName }
        message.options[.maximumMessageSize] = [0x05, 0xDC]
    }

    /// An Ethernet/IPv4/UDP frame from port 68 to port 67.
    private func frame(_ message: DHCPMessage, from source: IPv4Address, to destination: IPv4Address,
                       mac: MACAddress) -> [UInt8] {
        let payload = (try? message.bytes()) ?? []
        var out: [UInt8] = []
        out.reserveCapacity(14 + 20 + 8 + payload.count)
        EthernetHeader(destination: mac, source: configuration.mac, etherType: .ipv4).emit(into: &out)
        IPv4Header(source: source, destination: destination, protocol: .udp, payloadLength: 8 + payload.count,
                   ttl: 64, dontFragment: false, dscp: 4).emit(into: &out)
        UDPHeader(sourcePort: 68, destinationPort: 67).emit(payload: payload, source: source,
                                                            destination: destination, into: &out)
        return out
    }

    // MARK: Parsing replies

    /// A BOOTREPLY to port 68 sent to our MAC or to broadcast, and the
    /// sender's MAC; nil for any other frame.
    static func dhcpReply(in frame: UnsafeRawBufferPointer, for mac: MACAddress) -> (DHCPMessage, MACAddress)? {
        guard let ethernet = try? EthernetView(frame), ethernet.etherType == .ipv4,
              ethernet.destination == mac || ethernet.destination.isBroadcast,
              let ip = try? IPv4View(ethernet.payload), ip.protocol == .udp, !ip.isFragment,
              let udp = try? UDPView(ip.payload), udp.destinationPort == 68, udp.sourcePort == 67,
              let message = try? DHCPMessage.parse(udp.payload), message.operation == .reply
        else { return nil }
        return (message, ethernet.source)
    }

    /// Why an OFFER or ACK cannot be used, or nil when it can.
    static func problem(with message: DHCPMessage, expecting address: IPv4Address?) -> String? {
        let options = message.options
        let offered = message.yourAddress
        if offered == .any || offered.isMulticast || offered == .broadcast || offered.isLoopback {
            return "unusable address \(offered)"
        }
        if let address, offered != address { return "address \(offered) differs from \(address)" }
        guard options.serverIdentifier != nil else { return "no server identifier (option 54)" }
        guard let leaseTime = options.leaseTime else { return "no lease time (option 51)" }
        if leaseTime == 0 { return "lease time 0" }
        let mask = options.subnetMask ?? IPv4Address.mask(prefixLength: 24)
        guard let prefix = mask.prefixLength, prefix > 0, prefix < 32 else { return "bad subnet mask \(mask)" }
        if let router = options.routers.first, router.masked(prefixLength: prefix) != offered.masked(prefixLength: prefix) {
            return "router \(router) is outside \(offered.masked(prefixLength: prefix))/\(prefix)"
        }
        return nil
    }

    static func lease(from message: DHCPMessage, serverMAC: MACAddress, start: MonotonicInstant) -> DHCPLease {
        let options = message.options
        let leaseTime = options.leaseTime ?? 0
        var renewal = options.renewalTime ?? leaseTime / 2
        var rebinding = options.rebindingTime ?? UInt32(UInt64(leaseTime) * 7 / 8)
        if rebinding > leaseTime || rebinding == 0 { rebinding = UInt32(UInt64(leaseTime) * 7 / 8) }
        if renewal > rebinding || renewal == 0 { renewal = leaseTime / 2 }
        return DHCPLease(
            address: message.yourAddress,
            prefixLength: (options.subnetMask ?? IPv4Address.mask(prefixLength: 24)).prefixLength ?? 24,
            router: options.routers.first, dnsServers: options.domainNameServers, domainName: options.domainName,
            searchDomains: options.domainSearch, mtu: options.interfaceMTU.map(Int.init),
            server: options.serverIdentifier ?? .any, serverMAC: serverMAC, leaseTime: leaseTime,
            renewalTime: renewal, rebindingTime: rebinding, start: start)
    }
}
