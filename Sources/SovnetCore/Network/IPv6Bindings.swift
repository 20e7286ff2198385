// Which guest port may use which IPv6 address. IPv6 guests choose their own
// addresses (SLAAC, privacy addresses, link-local ones), so an address is
// bound to the port, and the MAC, that first sends from it; afterwards only
// that port may use it, as a source or as the target of a neighbour
// advertisement, so one guest cannot take another's traffic by spoofing
// (RFC 6620's first-come, first-served source validation). A binding stays
// when its port goes, so a guest that reconnects with the same MAC takes
// its addresses back (a move, which the NAT's flows follow); a binding on a
// port that is gone is also free for any other guest. Each port holds at
// most `maximumPerPort` bindings (its least recently used one gives way to
// a new one) and all ports `maximumTotal` (bindings of departed ports give
// way first, then a new address is refused).
import SovnetWire

/// IPv6 addresses bound to guest ports, first come, first served.
public struct IPv6Bindings: Sendable {
    public struct Binding: Sendable, Equatable {
        public var port: PortID
        public var mac: MACAddress
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
    private var countByPort: [PortID: Int] = [:]
    public var maximumPerPort: Int
    public var maximumTotal: Int

    public init(maximumPerPort: Int = 16, maximumTotal: Int = 4096) {
        self.maximumPerPort = maximumPerPort
        self.maximumTotal = maximumTotal
    }

    public var count: Int { bindings.count }

    /// Whether the guest on `port` with `mac` may use `address`, binding it
    /// when it is free. `isLive` says whether a port is still attached.
    public mutating func claim(_ address: IPv6Address, mac: MACAddress, port: PortID, now: ContinuousClock.Instant,
                               isLive: (PortID) -> Bool) -> Claim {
        if let binding = bindings[address] {
            if binding.port == port, binding.mac == mac {
                bindings[address]?.lastUsed = now
                return .held
            }
            guard !isLive(binding.port) else { return .refused }
            remove(address)
            guard makeRoom(for: port, isLive: isLive) else { return .refused }
            insert(address, Binding(port: port, mac: mac, lastUsed: now))
            return .bound(from: binding.mac == mac ? binding.port : nil)
        }
        guard makeRoom(for: port, isLive: isLive) else { return .refused }
        insert(address, Binding(port: port, mac: mac, lastUsed: now))
        return .bound(from: nil)
    }

    /// Whether `address` is bound to a live port other than `port`.
    public func isTaken(_ address: IPv6Address, byOtherThan port: PortID, isLive: (PortID) -> Bool) -> Bool {
        guard let binding = bindings[address] else { return false }
        return binding.port != port && isLive(binding.port)
    }

    public subscript(address: IPv6Address) -> Binding? { bindings[address] }

    /// Frees room for one more binding on `port`: its own oldest gives way
    /// at its limit; at the total limit, a departed port's binding does.
    private mutating func makeRoom(for port: PortID, isLive: (PortID) -> Bool) -> Bool {
        if countByPort[port, default: 0] >= maximumPerPort,
           let oldest = bindings.filter({ $0.value.port == port }).min(by: { $0.value.lastUsed < $1.value.lastUsed }) {
            remove(oldest.key)
        }
        guard bindings.count >= maximumTotal else { return true }
        guard let departed = bindings.first(where: { !isLive($0.value.port) }) else { return false }
        remove(departed.key)
        return true
    }

    private mutating func insert(_ address: IPv6Address, _ binding: Binding) {
        bindings[address] = binding
        countByPort[binding.port, default: 0] += 1
    }

    private mutating func remove(_ address: IPv6Address) {
        guard let binding = bindings.removeValue(forKey: address) else { return }
        let left = countByPort[binding.port, default: 1] - 1
        countByPort[binding.port] = left > 0 ? left : nil
    }
}
