// Reachability checks the gateway runs toward a guest, for `sovnet up` and
// `sovnet check` (through the control API's `/sovnet/check/` routes): ICMP
// echo from the gateway's address, and a TCP handshake from it to a port.
// The proxy carries them out on its loop's thread; the figures are taken
// there, when a frame is sent and when its answer is read.
import SovnetWire

/// What a series of echo requests from the gateway found, like `ping`'s summary.
public struct PingReport: Codable, Sendable, Equatable {
    public var address: String
    public var transmitted: Int
    public var received: Int
    /// Round-trip times of the replies, in milliseconds, in sequence order.
    public var roundTrips: [Double]
    /// Why nothing was sent (no guest has the address, the proxy is stopping).
    public var error: String?

    public init(address: String, transmitted: Int, roundTrips: [Double], error: String? = nil) {
        self.address = address
        self.transmitted = transmitted
        self.received = roundTrips.count
        self.roundTrips = roundTrips
        self.error = error
    }

    /// Lost requests as a percentage of those sent.
    public var lossPercent: Double {
        transmitted == 0 ? 100 : Double(transmitted - received) * 100 / Double(transmitted)
    }

    public var minimum: Double? { roundTrips.min() }
    public var maximum: Double? { roundTrips.max() }
    public var average: Double? { roundTrips.isEmpty ? nil : roundTrips.reduce(0, +) / Double(roundTrips.count) }
}

/// How a TCP handshake from the gateway to a guest's port went.
public struct TCPCheckReport: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// The guest answered SYN-ACK: something listens.
        case open
        /// The guest answered RST: nothing listens.
        case refused
        /// No answer within the timeout.
        case timeout
        /// The check could not run or the flow ended otherwise (see `detail`).
        case failed
    }

    public var address: String
    public var port: UInt16
    public var outcome: Outcome
    /// Milliseconds from the SYN to the answer, when there was one.
    public var milliseconds: Double?
    public var detail: String?

    public init(address: String, port: UInt16, outcome: Outcome, milliseconds: Double? = nil, detail: String? = nil) {
        self.address = address
        self.port = port
        self.outcome = outcome
        self.milliseconds = milliseconds
        self.detail = detail
    }
}

/// The checks the control API may ask of the proxy's loop. Calls block the
/// calling thread (never the loop's) for at most about their timeout.
public protocol GuestProbing: AnyObject, Sendable {
    func ping(_ address: IPAddress, count: Int, interval: Duration, timeout: Duration) -> PingReport
    func connect(_ address: IPAddress, port: UInt16, timeout: Duration) -> TCPCheckReport
}

