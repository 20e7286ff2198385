// The switch's ports, one record each: what the network and its NAT know of
// a guest's link besides its addresses. The virtual network owns the table
// (a port is in it from `attach` to `detach`) and the NAT reads it by
// reference, so one fact has one place: whether a port's frames carry
// virtio-net headers, and whether its connection is backlogged. Flow counts
// stay with the NAT's `FlowAdmission`, since a guest's TCP flows outlive
// its port while they wait for it to come back.
import SovnetWire

/// One guest port's link.
public struct GuestPort: Sendable, Equatable {
    /// Its frames carry virtio-net headers (`OffloadLink`): frames for it
    /// get one, and TCP toward it may go as superframes.
    public var offload = false
    /// Its connection could not take all that was sent: frames for it wait
    /// in the connection's backlog, and the NAT's flows toward it wait with
    /// their data in their host sockets until it drains.
    public var backlogged = false

    public init() {}
}

/// The ports of the switch.
public final class GuestPorts {
    public private(set) var records: [PortID: GuestPort] = [:]

    public init() {}

    public subscript(port: PortID) -> GuestPort? { records[port] }

    public func contains(_ port: PortID) -> Bool { records[port] != nil }

    /// Whether frames for `port` must wait (false for a port that is gone).
    public func isBacklogged(_ port: PortID) -> Bool { records[port]?.backlogged ?? false }

    func insert(_ port: PortID) { records[port] = GuestPort() }

    func remove(_ port: PortID) -> Bool { records.removeValue(forKey: port) != nil }

    /// Changes `port`'s record, if it is attached; true when it changed.
    @discardableResult
    public func update(_ port: PortID, _ change: (inout GuestPort) -> Void) -> Bool {
        guard var record = records[port] else { return false }
        let before = record
        change(&record)
        records[port] = record
        return record != before
    }
}
