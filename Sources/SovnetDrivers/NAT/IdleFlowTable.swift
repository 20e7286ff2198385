// The flow table of the NAT's UDP and ICMP echo parts: flows found by the
// guest's view of them (`FlowKey`) or by the number in their epoll token,
// and ended when idle or when their guest goes away; it counts its flows in
// the NAT's `FlowAdmission`. The parts own the sockets; the table only says
// which flows to end.
import SovnetCore
import SovnetWire

/// A flow that ends when it carries nothing for a while.
protocol IdleFlow {
    var key: FlowKey { get }
    var link: GuestLink { get }
    var lastActive: ContinuousClock.Instant { get }
}

/// Flows by key and by number.
struct IdleFlowTable<Flow: IdleFlow> {
    private var ids: [FlowKey: UInt64] = [:]
    private(set) var entries: [UInt64: Flow] = [:]
    private var nextID: UInt64 = 1
    let proto: IPProtocol
    let admission: FlowAdmission

    init(_ proto: IPProtocol, admission: FlowAdmission) {
        self.proto = proto
        self.admission = admission
    }

    /// Why a new flow may not open (see `FlowAdmission.refusal`).
    func refusal(port: PortID?) -> DropReason? { admission.refusal(proto, port: port) }

    var count: Int { entries.count }

    func id(of key: FlowKey) -> UInt64? { ids[key] }

    /// A number for a flow about to be inserted (its epoll token needs it first).
    mutating func reserveID() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    mutating func insert(_ flow: Flow, id: UInt64) {
        ids[flow.key] = id
        entries[id] = flow
        admission.opened(proto, port: flow.link.port)
    }

    /// Changes a flow in place.
    mutating func update(_ id: UInt64, _ change: (inout Flow) -> Void) {
        guard entries[id] != nil else { return }
        change(&entries[id]!)
    }

    mutating func remove(_ id: UInt64) -> Flow? {
        guard let flow = entries.removeValue(forKey: id) else { return nil }
        ids[flow.key] = nil
        admission.closed(proto, port: flow.link.port)
        return flow
    }

    /// The flows idle for `timeout` or longer at `now`.
    func idle(at now: ContinuousClock.Instant, for timeout: Duration) -> [UInt64] {
        entries.filter { now - $0.value.lastActive >= timeout }.map(\.key)
    }

    /// The flows of a guest's port.
    func flows(on port: PortID) -> [UInt64] {
        entries.filter { $0.value.link.port == port }.map(\.key)
    }
}
