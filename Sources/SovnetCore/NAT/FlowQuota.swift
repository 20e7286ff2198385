// How many NAT flows each guest holds, against a limit per guest, so that
// one guest (or a program gone wrong in it) cannot take every flow the NAT
// has and leave the others none. The NAT's parts count every flow of a
// guest, port forwards' included; only flows a guest opens are refused.
import SovnetWire

/// Flows per guest address, and the most one guest may open.
public struct FlowQuota: Sendable {
    public let limit: Int
    public private(set) var counts: [IPv4Address: Int] = [:]

    public init(limit: Int) {
        self.limit = limit
    }

    /// Whether `guest` may open another flow.
    public func admits(_ guest: IPv4Address) -> Bool { counts[guest, default: 0] < limit }

    public mutating func opened(_ guest: IPv4Address) {
        counts[guest, default: 0] += 1
    }

    public mutating func closed(_ guest: IPv4Address) {
        guard let count = counts[guest] else { return }
        counts[guest] = count > 1 ? count - 1 : nil
    }
}
