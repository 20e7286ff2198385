// Which guest port may use which IPv6 address. IPv6 guests choose their own
// addresses (SLAAC, privacy addresses, link-local ones), so an address is
// bound to the port, and the MAC, that first sends from it; afterwards only
// that port may use it, as a source or as the target of a neighbour
// advertisement, so one guest cannot take another's traffic by spoofing
// (RFC 6620's first-come, first-served source validation). A binding stays
// when its port goes (`portLeft`), so a guest that reconnects with the same
// MAC takes its addresses back (a move, which the NAT's flows follow); a
// binding of a departed port is also free for any other guest. Each port
// holds at most `maximumPerPort` bindings (its least recently used one gives
// way to a new one) and all ports `maximumTotal` (bindings of departed
// ports give way first, oldest departure first; then a new address is
// refused). Every operation costs at most `maximumPerPort` steps, however
// full the table, so a guest flooding new sources costs the proxy little.
import SovnetWire

/// IPv6 addresses bound to guest ports, first come, first served.
public struct IPv6Bindings: Sendable {
    public struct Binding: Sendable, Equatable {
        public var port: PortID
        public var mac: MACAddress
        /// False once the port has left.
        public var live: Bool
        var lastUsed: ContinuousClock.Instant
    }

    /// What a claim did.
    public enum Claim: Equatable, Sendable {
        /// The address is this port's already.
        case held
        /// The address was free, or its port gone, and is bound now; `from`
        /// is the port it was on for a guest that came back (same MAC).
        case bound(from: PortID?)
        case refused
    }

    public private(set) var bindings: [IPv6Address: Binding] = [:]
    /// Each live port's addresses.
    private var byPort: [PortID: [IPv6Address]] = [:]
    /// Addresses of departed ports, oldest departure first, from
    /// `departedStart` on; an entry whose binding was taken since is skipped
    /// when it comes up.
    private var departed: [IPv6Address] = []
    private var departedStart = 0
    public let maximumPerPort: Int
    public let maximumTotal: Int

    public init(maximumPerPort: Int = 16, maximumTotal: Int = 4096) {
        self.maximumPerPort = max(1, maximumPerPort)
        self.maximumTotal = max(1, maximumTotal)
    }

    public var count: Int { bindings.count }

    public subscript(address: IPv6Address) -> Binding? { bindings[address] }

    /// Whether the guest on `port` with `mac` may use `address`, binding it
    /// when it is free.
    public mutating func claim(_ address: IPv6Address, mac: MACAddress, port: PortID, now: ContinuousClock.Instant) -> Claim {
        var from: PortID?
        if let binding = bindings[address] {
            if binding.live {
                guard binding.port == port, binding.mac == mac else { return .refused }
                bindings[address]?.lastUsed = now
                return .held
            }
            if binding.mac == mac { from = binding.port }
            bindings[address] = nil
        }
        guard makeRoom(for: port) else { return .refused }
        bindings[address] = Binding(port: port, mac: mac, live: true, lastUsed: now)
        byPort[port, default: []].append(address)
        return .bound(from: from)
    }

    /// `port` has gone: its bindings stay, free for others, until they give way.
    public mutating func portLeft(_ port: PortID) {
        guard let addresses = byPort.removeValue(forKey: port) else { return }
        for address in addresses where bindings[address]?.port == port {
            bindings[address]?.live = false
            departed.append(address)
        }
        if departed.count - departedStart > 2 * maximumTotal {
            departed = departed[departedStart...].filter { bindings[$0]?.live == false }
            departedStart = 0
        }
    }

    /// Frees room for one more binding on `port`: its own least recently
    /// used gives way at its limit; at the total limit, a departed port's does.
    private mutating func makeRoom(for port: PortID) -> Bool {
        var own = byPort[port, default: []].filter { bindings[$0]?.port == port && bindings[$0]?.live == true }
        if own.count >= maximumPerPort,
           let oldest = own.indices.min(by: { bindings[own[$0]]!.lastUsed < bindings[own[$1]]!.lastUsed }) {
            bindings[own[oldest]] = nil
            own.remove(at: oldest)
        }
        byPort[port] = own
        while bindings.count >= maximumTotal {
            guard departedStart < departed.count else { return false }
            let address = departed[departedStart]
            departedStart += 1
            if bindings[address]?.live == false { bindings[address] = nil }
        }
        if departedStart == departed.count {
            departed.removeAll(keepingCapacity: true)
            departedStart = 0
        }
        return true
    }
}
