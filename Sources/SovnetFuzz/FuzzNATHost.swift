// The NAT core's host in memory, for the fuzzer: TCP sockets are
// `FuzzSocket`s, datagram sockets are numbers, and nothing leaves the
// process. It checks the core's side of the host contract: a connection
// handed to the core is adopted or given back exactly once, datagrams go
// only to sockets that are open, and a datagram socket is closed once.
import SovnetCore
import SovnetWire

final class FuzzNATHost: NATHost {
    /// TCP flows' sockets, by flow, while open.
    private(set) var sockets: [FlowID: FuzzSocket] = [:]
    /// Datagram flows' sockets, by flow, while open.
    private(set) var datagrams: [FlowID: DatagramKind] = [:]
    /// Connections handed to the core and not yet adopted or given back.
    private var handedOver: Set<HostConnection> = []
    private var nextConnection: Int32 = 1000
    /// Whether the next datagram sent is refused (port unreachable).
    var refuseNextSend = false
    private(set) var reports: Set<String> = []
    /// What guests sent and the sockets took, across flows.
    let ledger = FuzzLedger()

    /// A new connection, as a forward's listener would accept it.
    func connection() -> HostConnection {
        nextConnection += 1
        let made = HostConnection(nextConnection)
        handedOver.insert(made)
        return made
    }

    /// After each event: every connection handed over was taken or given back.
    func checkConnections() {
        expect(handedOver.isEmpty, "connections neither adopted nor discarded: \(handedOver)")
        for (id, socket) in sockets where socket.closed {
            sockets[id] = nil
            reports.insert("tcp-closed")
        }
    }

    func hostAddresses(now: ContinuousClock.Instant) -> HostAddressSet { HostAddressSet() }

    func connectTCP(_ id: FlowID, to address: IPAddress, port: UInt16) -> TCPConnectStart {
        expect(sockets[id] == nil, "\(id) opened twice")
        let socket = FuzzSocket(ledger: ledger)
        sockets[id] = socket
        reports.insert("tcp-flow")
        return .connecting(socket)
    }

    func openService(_ service: GatewayService, _ id: FlowID, port: PortID, guest: IPAddress) -> FlowSocket? {
        expect(sockets[id] == nil, "\(id) opened twice")
        let socket = FuzzSocket(ledger: ledger)
        sockets[id] = socket
        return socket
    }

    func adoptTCP(_ connection: HostConnection, _ id: FlowID) -> FlowSocket? {
        expect(handedOver.remove(connection) != nil, "a connection adopted that was not handed over, or twice")
        let socket = FuzzSocket(ledger: ledger)
        sockets[id] = socket
        return socket
    }

    func discard(_ connection: HostConnection) {
        expect(handedOver.remove(connection) != nil, "a connection discarded that was not handed over, or twice")
    }

    func openDatagram(_ id: FlowID, _ kind: DatagramKind, to address: IPAddress, port: UInt16) -> DatagramOpening {
        expect(datagrams[id] == nil, "\(id) opened twice")
        datagrams[id] = kind
        return .opened
    }

    func send(_ payload: UnsafeRawBufferPointer, on id: FlowID) -> DatagramSending {
        expect(datagrams[id] != nil, "a datagram sent on \(id), which is not open")
        defer { refuseNextSend = false }
        return refuseNextSend ? .refused : .sent
    }

    func send(_ payload: UnsafeRawBufferPointer, to client: HostEndpoint, from forward: UInt64) {
        reports.insert("forward-answer")
    }

    func closeDatagram(_ id: FlowID) {
        expect(datagrams.removeValue(forKey: id) != nil, "\(id) closed twice, or never opened")
    }

    func report(_ report: NATReport) {
        switch report {
        case .flowEnded: reports.insert("report-flow-ended")
        case .fragmentDropped: reports.insert("report-fragment")
        case .forwardWithoutGuest: reports.insert("report-no-guest")
        }
    }
}
