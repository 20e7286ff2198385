// Which new NAT flows may open: one place for the TCP, UDP and ICMP echo
// parts, so that their limits cannot drift apart. A new flow is refused
// when its protocol has `maximumFlows` already (`flow-limit`), when the
// guest port that opens it has `maximumFlowsPerGuest` of that protocol
// (`guest-flow-limit`), or when all protocols together hold
// `maximumTotal`, the flows the proxy's descriptors can carry
// (`flow-limit`). Flows are counted per switch port, not per address, since
// one guest may send from many addresses; a flow that follows its guest to
// a new port (a forwarder that reconnected) is counted there.
import SovnetWire

/// Flow counts against the NAT's limits, shared by its parts.
public final class FlowAdmission {
    public let maximumFlows: Int
    public let maximumFlowsPerGuest: Int
    public let maximumTotal: Int
    /// Flows by protocol, and by protocol and port.
    public private(set) var counts: [IPProtocol: Int] = [:]
    private var portCounts: [IPProtocol: [PortID: Int]] = [:]
    /// New flows refused at `maximumFlows` or `maximumTotal`, and at `maximumFlowsPerGuest`.
    public private(set) var limitHits = 0
    public private(set) var guestLimitHits = 0
    public private(set) var total = 0

    public init(maximumFlows: Int, maximumFlowsPerGuest: Int, maximumTotal: Int) {
        self.maximumFlows = maximumFlows
        self.maximumFlowsPerGuest = maximumFlowsPerGuest
        self.maximumTotal = maximumTotal
    }

    /// Why a new `proto` flow of the guest on `port` may not open (counted),
    /// or nil; a flow the host opens toward a guest (a port forward's) passes
    /// `port` nil and meets only the limits for all.
    public func refusal(_ proto: IPProtocol, port: PortID?) -> DropReason? {
        if total >= maximumTotal || counts[proto, default: 0] >= maximumFlows {
            limitHits += 1
            return .flowLimit
        }
        if let port, count(proto, on: port) >= maximumFlowsPerGuest {
            guestLimitHits += 1
            return .guestFlowLimit
        }
        return nil
    }

    /// Flows of `proto` the guest on `port` holds.
    public func count(_ proto: IPProtocol, on port: PortID) -> Int { portCounts[proto]?[port] ?? 0 }

    public func opened(_ proto: IPProtocol, port: PortID) {
        total += 1
        counts[proto, default: 0] += 1
        portCounts[proto, default: [:]][port, default: 0] += 1
    }

    public func closed(_ proto: IPProtocol, port: PortID) {
        guard let held = portCounts[proto]?[port], held > 0 else { return }
        portCounts[proto]![port] = held > 1 ? held - 1 : nil
        counts[proto]! -= 1
        total -= 1
    }

    /// A flow now belongs to the guest's new port.
    public func moved(_ proto: IPProtocol, from old: PortID, to new: PortID) {
        guard old != new, let held = portCounts[proto]?[old], held > 0 else { return }
        portCounts[proto]![old] = held > 1 ? held - 1 : nil
        portCounts[proto]![new, default: 0] += 1
    }
}
