// The flow table of the NAT's UDP and ICMP echo parts: flows found by the
// guest's view of them (`FlowKey`) or by their `FlowID`, and ended when idle
// or when their guest goes away; it counts its flows in the NAT's
// `FlowAdmission`. The parts tell the host to close the sockets; the table
// only says which flows to end.
import SovnetWire

/// What the UDP and ICMP echo parts share: the frames for guests, the host
/// that carries out their commands, flow numbers, limits and the idle timeout.
struct DatagramFlowContext {
    let frames: GuestFrames
    unowned let host: NATHost
    let ids: FlowIDSource
    let admission: FlowAdmission
    /// How long a flow lives without traffic.
    let idleTimeout: Duration
}

/// A flow that ends when it carries nothing for a while.
protocol IdleFlow {
    var key: FlowKey { get }
    var link: GuestLink { get }
    var lastActive: ContinuousClock.Instant { get }
}

/// Flows by key and by number.
struct IdleFlowTable<Flow: IdleFlow> {
    private var ids: [FlowKey: FlowID] = [:]
    private(set) var entries: [FlowID: Flow] = [:]
    let proto: IPProtocol
    let admission: FlowAdmission

    init(_ proto: IPProtocol, admission: FlowAdmission) {
        self.proto = proto
        self.admission = admission
    }

    /// Why a new flow may not open (see `FlowAdmission.refusal`).
    func refusal(port: PortID?) -> DropReason? { admission.refusal(proto, port: port) }

    var count: Int { entries.count }

    func id(of key: FlowKey) -> FlowID? { ids[key] }

    mutating func insert(_ flow: Flow, id: FlowID) {
        ids[flow.key] = id
        entries[id] = flow
        admission.opened(proto, port: flow.link.port)
    }

    /// Changes a flow in place.
    mutating func update(_ id: FlowID, _ change: (inout Flow) -> Void) {
        guard let index = entries.index(forKey: id) else { return }
        change(&entries.values[index])
    }

    mutating func remove(_ id: FlowID) -> Flow? {
        guard let flow = entries.removeValue(forKey: id) else { return nil }
        ids[flow.key] = nil
        admission.closed(proto, port: flow.link.port)
        return flow
    }

    /// The flows idle for `timeout` or longer at `now`.
    func idle(at now: ContinuousClock.Instant, for timeout: Duration) -> [FlowID] {
        entries.filter { now - $0.value.lastActive >= timeout }.map(\.key)
    }

    /// The flows of a guest's port.
    func flows(on port: PortID) -> [FlowID] {
        entries.filter { $0.value.link.port == port }.map(\.key)
    }
}
