// What the NAT core asks of the host, and what the host tells it. The core
// (`NATCore`) decides; the host carries out: it opens, watches and closes
// sockets and performs their system calls. The driver implements `NATHost`
// with non-blocking sockets and epoll, tests and the fuzzer implement it in
// memory. Commands are calls on this protocol rather than values returned,
// so the packet path allocates nothing and a command's result (a send
// refused by an ICMP error, a connect failing at once) reaches the core
// within the same event.
//
// Every flow has a `FlowID`, chosen by the core before the host opens its
// socket, so the host can file the socket under it (in an epoll token) and
// report its readiness with it. A `HostConnection` the host hands to the
// core (a port forward's accepted connection, a check's socketpair) is
// either adopted (`adoptTCP`) or given back (`discard`), never kept.
import SovnetWire

/// The number of one NAT flow, unique among the flows of all protocols.
public struct FlowID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let rawValue: UInt64

    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (a: FlowID, b: FlowID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "flow \(rawValue)" }
}

/// Hands out flow numbers, shared by the NAT's protocol tables.
final class FlowIDSource {
    private var next: UInt64 = 1

    func take() -> FlowID {
        defer { next += 1 }
        return FlowID(next)
    }
}

/// A host connection handed to the core, opaque to it (a descriptor in the driver).
public struct HostConnection: Hashable, Sendable {
    public let rawValue: Int32

    public init(_ rawValue: Int32) { self.rawValue = rawValue }
}

/// A host address and port: a port forward's client.
public struct HostEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { address.with(port: port) }
}

/// The gateway's own TCP services, reached by guests at its address.
public enum GatewayService: Sendable, Equatable {
    /// DNS over TCP (RFC 7766), port 53.
    case dns
    /// The forwarder endpoints of the control API, port 80, as gvproxy has them.
    case forwarderAPI

    public init?(port: UInt16) {
        switch port {
        case 53: self = .dns
        case 80: self = .forwarderAPI
        default: return nil
        }
    }
}

/// How a host connect began.
public enum TCPConnectStart {
    /// Connected at once; the socket is watched for data.
    case connected(FlowSocket)
    /// Under way: the socket's readiness will be reported (`NATCore.hostSocketReady`).
    case connecting(FlowSocket)
    /// Failed at once (or could not be watched), with an errno value; the socket is still to be closed.
    case failed(FlowSocket, Int32)
    /// No socket could be opened.
    case noSocket
}

/// The kinds of datagram socket a flow has.
public enum DatagramKind: Sendable, Hashable {
    case udp
    /// An unprivileged ICMP echo ("ping") socket.
    case echo
}

/// How opening a datagram socket went.
public enum DatagramOpening: Sendable, Equatable {
    case opened
    /// The host does not allow sockets of this kind (ping sockets outside `ping_group_range`).
    case notPermitted
    /// Opening or connecting failed with this errno value (ENETUNREACH: no route to the destination).
    case failed(Int32)
}

/// How sending a datagram went.
public enum DatagramSending: Sendable, Equatable {
    case sent
    /// The destination answered an earlier datagram with port unreachable (ECONNREFUSED).
    case refused
    /// Any other failure (a full buffer drops the datagram, as a router would).
    case failed
}

/// What the NAT tells its host so that it can be logged.
public enum NATReport: Sendable, Equatable {
    /// A TCP flow ended otherwise than with FINs both ways.
    case flowEnded(FlowKey, reason: String)
    /// A fragment from `source` was dropped.
    case fragmentDropped(source: IPAddress, reason: String)
    /// A port forward's connection or datagram arrived while no guest has the forward's address.
    case forwardWithoutGuest(IPAddress)
}

/// The host side of the NAT: sockets and what the host knows of itself.
public protocol NATHost: AnyObject {
    /// The host's own addresses now (which guests may not reach directly).
    func hostAddresses(now: ContinuousClock.Instant) -> HostAddressSet
    /// Opens a TCP socket for flow `id` and starts connecting it to `address`:`port`.
    func connectTCP(_ id: FlowID, to address: IPAddress, port: UInt16) -> TCPConnectStart
    /// Opens the host end of flow `id` toward one of the gateway's own
    /// services, connected at once; the service gets the other end and
    /// serves the guest at `guest` on `port`. Nil when no socket could be made.
    func openService(_ service: GatewayService, _ id: FlowID, port: PortID, guest: IPAddress) -> FlowSocket?
    /// Makes `connection` the host end of flow `id`, watched for data; nil
    /// when it cannot be watched (the host closed it then).
    func adoptTCP(_ connection: HostConnection, _ id: FlowID) -> FlowSocket?
    /// Closes a connection the core did not adopt.
    func discard(_ connection: HostConnection)
    /// Opens a datagram socket for flow `id`, connected to `address`:`port`
    /// (0 for echo sockets), and watches it; an echo socket toward an IPv6
    /// address speaks ICMPv6.
    func openDatagram(_ id: FlowID, _ kind: DatagramKind, to address: IPAddress, port: UInt16) -> DatagramOpening
    /// Sends a datagram on flow `id`'s socket.
    func send(_ payload: UnsafeRawBufferPointer, on id: FlowID) -> DatagramSending
    /// Sends a datagram to a port forward's client from the forward's socket.
    func send(_ payload: UnsafeRawBufferPointer, to client: HostEndpoint, from forward: UInt64)
    /// Closes flow `id`'s datagram socket.
    func closeDatagram(_ id: FlowID)
    /// Something worth a log line.
    func report(_ report: NATReport)
}
