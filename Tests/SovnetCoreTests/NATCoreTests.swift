import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore

/// A NAT host in memory that records every command the core gives it.
final class RecordingHost: NATHost {
    enum Command: Hashable {
        case connect(FlowID, IPAddress, UInt16)
        case service(GatewayService, FlowID, PortID, IPAddress)
        case adopt(HostConnection, FlowID)
        case discard(HostConnection)
        case open(FlowID, DatagramKind, IPAddress, UInt16)
        case send(FlowID, [UInt8])
        case sendToClient(HostEndpoint, UInt64, [UInt8])
        case close(FlowID)
    }

    var commands: [Command] = []
    var reports: [NATReport] = []
    var sockets: [FlowID: MemorySocket] = [:]
    var addresses = HostAddressSet()
    /// What connects and datagram opens and sends answer.
    var connectStart: (MemorySocket) -> TCPConnectStart = { .connecting($0) }
    var datagramOpening = DatagramOpening.opened
    var datagramSending = DatagramSending.sent

    func hostAddresses(now: ContinuousClock.Instant) -> HostAddressSet { addresses }

    func connectTCP(_ id: FlowID, to address: IPAddress, port: UInt16) -> TCPConnectStart {
        commands.append(.connect(id, address, port))
        let socket = MemorySocket()
        sockets[id] = socket
        return connectStart(socket)
    }

    func openService(_ service: GatewayService, _ id: FlowID, port: PortID, guest: IPAddress) -> FlowSocket? {
        commands.append(.service(service, id, port, guest))
        let socket = MemorySocket()
        sockets[id] = socket
        return socket
    }

    func adoptTCP(_ connection: HostConnection, _ id: FlowID) -> FlowSocket? {
        commands.append(.adopt(connection, id))
        let socket = MemorySocket()
        sockets[id] = socket
        return socket
    }

    func discard(_ connection: HostConnection) { commands.append(.discard(connection)) }

    func openDatagram(_ id: FlowID, _ kind: DatagramKind, to address: IPAddress, port: UInt16) -> DatagramOpening {
        commands.append(.open(id, kind, address, port))
        return datagramOpening
    }

    func send(_ payload: UnsafeRawBufferPointer, on id: FlowID) -> DatagramSending {
        commands.append(.send(id, Array(payload)))
        return datagramSending
    }

    func send(_ payload: UnsafeRawBufferPointer, to client: HostEndpoint, from forward: UInt64) {
        commands.append(.sendToClient(client, forward, Array(payload)))
    }

    func closeDatagram(_ id: FlowID) { commands.append(.close(id)) }
    func report(_ report: NATReport) { reports.append(report) }

    /// The commands since the last call.
    func take() -> [Command] {
        defer { commands.removeAll() }
        return commands
    }
}

/// The NAT core driven by recorded and built guest frames and by host events,
/// with its host in memory: what it asks of the host and what it sends guests.
@Suite struct NATCoreTests {
    static let guest = IPv4Address(192, 168, 127, 2)
    static let gateway = IPv4Address(192, 168, 127, 1)
    static let alias = IPv4Address(192, 168, 127, 254)
    static let guestMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    static let gatewayMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD)
    static let port = PortID(1)
    let start = ContinuousClock.now

    /// A core with `host`; `guests` says which addresses are on the switch.
    static func core(_ host: RecordingHost, settings: NATSettings = NATSettings(),
                     guests: [IPAddress: GuestLink] = [.v4(guest): GuestLink(port: port, mac: guestMAC)]) -> NATCore {
        NATCore(settings: settings, network: VirtualNetworkConfiguration(), host: host) { guests[$0] }
    }

    /// A frame from the guest carrying `transport` (its header and payload) to `destination`.
    static func frame(to destination: IPv4Address, from source: IPv4Address = guest, _ proto: IPProtocol,
                      _ transport: (inout [UInt8]) -> Void) -> [UInt8] {
        var segment: [UInt8] = []
        transport(&segment)
        var out: [UInt8] = []
        EthernetHeader(destination: gatewayMAC, source: guestMAC, etherType: .ipv4).emit(into: &out)
        IPv4Header(source: source, destination: destination, protocol: proto, payloadLength: segment.count).emit(into: &out)
        return out + segment
    }

    static func syn(to destination: IPv4Address, port: UInt16, from sourcePort: UInt16 = 40000) -> [UInt8] {
        frame(to: destination, .tcp) {
            TCPHeader(sourcePort: sourcePort, destinationPort: port, sequenceNumber: 1000, flags: [.syn], window: 64240)
                .emit(payload: [], source: guest, destination: destination, into: &$0)
        }
    }

    static func udp(to destination: IPv4Address, port: UInt16, from sourcePort: UInt16 = 50000, _ payload: [UInt8]) -> [UInt8] {
        frame(to: destination, .udp) {
            UDPHeader(sourcePort: sourcePort, destinationPort: port).emit(payload: payload, source: guest,
                                                                          destination: destination, into: &$0)
        }
    }

    static func echoRequest(to destination: IPv4Address, identifier: UInt16, sequence: UInt16 = 1) -> [UInt8] {
        frame(to: destination, .icmp) { out in
            [UInt8]("ping".utf8).withUnsafeBytes {
                ICMPv4Header.echo(.echoRequest, identifier: identifier, sequence: sequence).emit(body: $0, into: &out)
            }
        }
    }

    func receive(_ core: NATCore, _ frame: [UInt8], from port: PortID = port) {
        frame.withUnsafeBytes { core.receive($0, from: port, now: start) }
    }

    /// What the core sent guests since the last call, as IPv4 packets parsed.
    struct Sent {
        var source: IPv4Address
        var destination: IPv4Address
        var tcp: TCPHeader?
        var udp: (header: UDPHeader, payload: [UInt8])?
        var icmp: (header: ICMPv4Header, body: [UInt8])?
    }

    static func drain(_ core: NATCore) throws -> [Sent] {
        var result: [Sent] = []
        try core.frames.storage.withUnsafeBytes { bytes in
            for frame in core.frames.frames {
                let ethernet = try EthernetView(UnsafeRawBufferPointer(rebasing: bytes[frame.range]))
                #expect(ethernet.source == core.frames.gatewayMAC)
                let ip = try IPv4View(ethernet.payload)
                var sent = Sent(source: ip.source, destination: ip.destination)
                switch ip.protocol {
                case .tcp: sent.tcp = try TCPHeader(try TCPView(ip.payload, source: ip.source, destination: ip.destination))
                case .udp:
                    let view = try UDPView(ip.payload, source: ip.source, destination: ip.destination)
                    sent.udp = (UDPHeader(view), Array(view.payload))
                case .icmp:
                    let view = try ICMPv4View(ip.payload)
                    sent.icmp = (ICMPv4Header(view), Array(view.body))
                default: break
                }
                result.append(sent)
            }
        }
        core.frames.removeAll()
        return result
    }

    @Test func aRecordedSYNToTheHostAliasConnectsToLoopbackAndIsAnsweredOnceConnected() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        let syn = try TCPFlowTests.recordedSYN()
        receive(core, syn.frame)
        let port = try syn.withView { $0.destinationPort }
        guard case .connect(let id, let address, let connectedPort) = try #require(host.take().first) else {
            Issue.record("no connect")
            return
        }
        #expect(address == .v4(IPv4Address(127, 0, 0, 1)) && connectedPort == port)
        #expect(try Self.drain(core).isEmpty, "no SYN-ACK before the host connect succeeded")
        #expect(core.statistics.tcpStates == ["connecting": 1])

        core.hostSocketReady(id, readable: false, writable: true, now: start)
        let answer = try #require(try Self.drain(core).first)
        #expect(answer.source == Self.alias && answer.destination == Self.guest)
        #expect(answer.tcp?.flags == [.syn, .ack] && answer.tcp?.sourcePort == port)
        #expect(core.statistics.tcpFlowsOpened == 1 && core.statistics.tcpStates == ["syn-received": 1])
    }

    @Test func aConnectRefusedByTheHostResetsTheGuest() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        receive(core, Self.syn(to: Self.alias, port: 9))
        let id = try #require(host.sockets.keys.first)
        host.sockets[id]?.connectResult = 111  // ECONNREFUSED
        core.hostSocketReady(id, readable: false, writable: true, now: start)
        let answer = try #require(try Self.drain(core).first)
        #expect(answer.tcp?.flags == [.rst, .ack] && answer.tcp?.acknowledgmentNumber == 1001)
        #expect(host.sockets[id]?.closed != nil && core.statistics.tcpStates.isEmpty)
    }

    @Test func destinationsThePolicyRefusesAreCountedAndNeverOpened() throws {
        let host = RecordingHost()
        host.addresses = HostAddressSet(addresses: [IPv4Address(10, 0, 0, 7)])
        let core = Self.core(host)
        receive(core, Self.syn(to: IPv4Address(127, 0, 0, 1), port: 22))
        receive(core, Self.syn(to: IPv4Address(10, 0, 0, 7), port: 22))
        receive(core, Self.udp(to: IPv4Address(169, 254, 169, 254), port: 80, [1]))
        receive(core, Self.echoRequest(to: IPv4Address(224, 0, 0, 1), identifier: 1))
        #expect(host.take().isEmpty)
        #expect(core.statistics.drops == ["loopback-destination": 1, "host-address": 1, "link-local-destination": 1,
                                          "no-route": 1])
    }

    @Test func oneAdmissionForEveryProtocolCountsEveryRefusal() throws {
        var settings = NATSettings()
        settings.maximumFlowsPerGuest = 1
        let host = RecordingHost()
        let core = Self.core(host, settings: settings)
        let remote = IPv4Address(10, 1, 1, 1)
        receive(core, Self.syn(to: remote, port: 80, from: 40001))
        receive(core, Self.syn(to: remote, port: 80, from: 40002))
        let refusal = try #require(try Self.drain(core).first)
        #expect(refusal.tcp?.flags == [.rst, .ack], "a TCP flow past the limit gets an RST")
        receive(core, Self.udp(to: remote, port: 53, from: 50001, [1]))
        receive(core, Self.udp(to: remote, port: 53, from: 50002, [2]))
        receive(core, Self.echoRequest(to: remote, identifier: 1))
        receive(core, Self.echoRequest(to: remote, identifier: 2))
        #expect(core.statistics.drops == ["guest-flow-limit": 3], "one more of each protocol than the guest may have")

        settings.maximumTotalFlows = 3

        let other = GuestLink(port: PortID(2), mac: MACAddress(0x02, 0, 0, 0, 0, 2))
        let second = IPv4Address(192, 168, 127, 3)
        let core2 = Self.core(host, settings: settings, guests: [.v4(second): other])
        receive(core2, Self.syn(to: remote, port: 80), from: other.port)
        receive(core2, Self.udp(to: remote, port: 53, [1]), from: other.port)
        receive(core2, Self.echoRequest(to: remote, identifier: 1), from: other.port)
        #expect(core2.statistics.udpFlows == 1 && core2.statistics.icmpFlows == 1)
        let guest3 = GuestLink(port: PortID(3), mac: MACAddress(0x02, 0, 0, 0, 0, 3))
        receive(core2, Self.echoRequest(to: remote, identifier: 9), from: guest3.port)
        #expect(core2.statistics.drops["flow-limit"] == 1, "echo past the total is refused as TCP and UDP are")
        #expect(core2.statistics.flowLimitHits == 1, "and counted with them")
    }

    @Test func udpAnswersComeBackFromTheAddressTheGuestWroteTo() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        receive(core, Self.udp(to: Self.alias, port: 5353, Array("question".utf8)))
        let commands = host.take()
        guard case .open(let id, .udp, let address, 5353) = try #require(commands.first) else {
            Issue.record("no UDP socket opened: \(commands)")
            return
        }
        #expect(address == .v4(IPv4Address(127, 0, 0, 1)))
        #expect(commands.dropFirst().first == .send(id, Array("question".utf8)))

        Array("answer".utf8).withUnsafeBytes { core.receiveDatagram($0, on: id, now: start) }
        let answer = try #require(try Self.drain(core).first)
        #expect(answer.source == Self.alias && answer.udp?.header.sourcePort == 5353)
        #expect(answer.udp?.header.destinationPort == 50000 && answer.udp?.payload == Array("answer".utf8))
        #expect(core.statistics.udp.packetsToGuest == 1 && core.statistics.udp.packetsFromGuest == 1)
    }

    @Test func aRefusedDatagramBecomesPortUnreachableQuotingTheGuests() throws {
        let host = RecordingHost()
        host.datagramSending = .refused
        let core = Self.core(host)
        let datagram = Self.udp(to: Self.alias, port: 9, Array("x".utf8))
        receive(core, datagram)
        let error = try #require(try Self.drain(core).first)
        #expect(error.icmp?.header.type == .destinationUnreachable && error.icmp?.header.code == 3)
        #expect(error.icmp?.body == Array(datagram[14..<(14 + 28)]), "the guest's IP header and 8 bytes are quoted")
        #expect(error.source == Self.alias)
    }

    @Test func idleDatagramFlowsEndAndTheirSocketsClose() throws {
        var settings = NATSettings()
        settings.idleTimeout = .seconds(60)
        let host = RecordingHost()
        let core = Self.core(host, settings: settings)
        receive(core, Self.udp(to: Self.alias, port: 5353, [1]))
        receive(core, Self.echoRequest(to: Self.alias, identifier: 7))
        let opened = host.take().compactMap { command -> FlowID? in
            if case .open(let id, _, _, _) = command { return id }
            return nil
        }
        #expect(opened.count == 2)
        core.tick(now: start + .seconds(59))
        #expect(host.take().isEmpty)
        core.tick(now: start + .seconds(61))
        #expect(Set(host.take()) == Set(opened.map { RecordingHost.Command.close($0) }))
        #expect(core.statistics.udpFlows == 0 && core.statistics.icmpFlows == 0)
    }

    @Test func aRecordedEchoIsSentOnAPingSocketAndTheReplyRewrittenToTheGuestsIdentifier() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        let recorded = try PcapReader.frames(at: VirtualNetworkTests.gvproxyCapture,
                                             filter: "icmp[icmptype] == icmp-echo and dst host 192.168.127.254").map(\.bytes)
        let request = try #require(recorded.first)
        let (identifier, sequence, body) = try request.withUnsafeBytes { raw in
            let icmp = try ICMPv4View(try IPv4View(try EthernetView(raw).payload).payload)
            return (icmp.identifier, icmp.sequence, Array(icmp.body))
        }
        receive(core, request)
        let commands = host.take()
        guard case .open(let id, .echo, .v4(IPv4Address(127, 0, 0, 1)), 0) = try #require(commands.first) else {
            Issue.record("no echo socket opened: \(commands)")
            return
        }
        #expect(commands.count == 2)

        var reply: [UInt8] = []
        body.withUnsafeBytes { ICMPv4Header.echo(.echoReply, identifier: 4242, sequence: sequence).emit(body: $0, into: &reply) }
        reply.withUnsafeBytes { core.receiveEcho($0, on: id, now: start) }
        let sent = try #require(try Self.drain(core).first)
        #expect(sent.source == Self.alias && sent.destination == Self.guest)
        #expect(sent.icmp?.header == .echo(.echoReply, identifier: identifier, sequence: sequence) && sent.icmp?.body == body)
    }

    @Test func echoWithoutPingSocketsIsDroppedNeverAnswered() throws {
        let host = RecordingHost()
        host.datagramOpening = .notPermitted
        let core = Self.core(host)
        receive(core, Self.echoRequest(to: Self.alias, identifier: 1))
        #expect(try Self.drain(core).isEmpty)
        #expect(core.statistics.drops == ["ping-not-permitted": 1] && core.statistics.icmpFlows == 0)
    }

    @Test func theGatewaysServicesOpenOverThePairAndPort80OnlyWithTheGuestAPI() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        receive(core, Self.syn(to: Self.gateway, port: 53))
        guard case .service(.dns, _, Self.port, .v4(Self.guest)) = try #require(host.take().first) else {
            Issue.record("DNS over TCP not opened")
            return
        }
        #expect(try Self.drain(core).first?.tcp?.flags == [.syn, .ack], "the service is connected at once")

        var settings = NATSettings()
        settings.guestAPI = false
        let closed = Self.core(host, settings: settings)
        receive(closed, Self.syn(to: Self.gateway, port: 80))
        #expect(host.take().isEmpty)
        #expect(try Self.drain(closed).first?.tcp?.flags == [.rst, .ack])
        #expect(closed.statistics.drops == ["no-flow": 1])
    }

    @Test func aForwardedConnectionIsAdoptedTowardItsGuestOrGivenBack() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        core.acceptForwarded(HostConnection(50), to: .v4(IPv4Address(192, 168, 127, 9)), port: 22, now: start)
        #expect(host.take() == [.discard(HostConnection(50))])
        #expect(host.reports == [.forwardWithoutGuest(.v4(IPv4Address(192, 168, 127, 9)))])

        core.acceptForwarded(HostConnection(51), to: .v4(Self.guest), port: 22, now: start)
        guard case .adopt(HostConnection(51), _) = try #require(host.take().first) else {
            Issue.record("not adopted")
            return
        }
        let syn = try #require(try Self.drain(core).first)
        #expect(syn.source == Self.gateway && syn.tcp?.flags == [.syn] && syn.tcp?.destinationPort == 22)
        #expect(syn.tcp?.sourcePort == 32768)
    }

    @Test func udpForwardClientsEachGetAFlowAndAnswersGoBackToThem() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        let client = HostEndpoint(.v4(IPv4Address(127, 0, 0, 1)), 6000)
        Array("q".utf8).withUnsafeBytes {
            core.receiveForwarded($0, from: client, forward: 3, to: .v4(Self.guest), port: 53, now: start)
            core.receiveForwarded($0, from: client, forward: 3, to: .v4(Self.guest), port: 53, now: start)
        }
        let toGuest = try Self.drain(core)
        #expect(toGuest.count == 2 && Set(toGuest.compactMap { $0.udp?.header.sourcePort }).count == 1,
                "one client, one gateway port")
        let gatewayPort = try #require(toGuest.first?.udp?.header.sourcePort)
        receive(core, Self.frame(to: Self.gateway, .udp) {
            UDPHeader(sourcePort: 53, destinationPort: gatewayPort).emit(payload: Array("a".utf8), source: Self.guest,
                                                                        destination: Self.gateway, into: &$0)
        })
        #expect(host.take() == [.sendToClient(client, 3, Array("a".utf8))])
        core.forwardRemoved(3)
        #expect(core.statistics.udpFlows == 0)
    }

    @Test func aGuestThatLeftGetsItsFlowsBackWithinTheGraceAndLosesThemAfter() throws {
        let host = RecordingHost()
        host.connectStart = { .connected($0) }
        let core = Self.core(host)
        receive(core, Self.syn(to: Self.alias, port: 8080, from: 40001))
        receive(core, Self.udp(to: Self.alias, port: 5353, [1]))
        _ = try Self.drain(core)
        let tcpID = try #require(host.sockets.keys.first)
        let udpID = try #require(host.take().compactMap { command -> FlowID? in
            if case .open(let id, .udp, _, _) = command { return id }
            return nil
        }.first)
        core.detach(Self.port, now: start)
        #expect(host.take() == [.close(udpID)], "datagram flows end with their guest")
        core.tick(now: start + .seconds(9))
        #expect(host.sockets[tcpID]?.closed == nil, "TCP waits for the guest to come back")
        core.tick(now: start + .seconds(11))
        #expect(host.sockets[tcpID]?.closed == true, "and is reset on the host after the grace")
        #expect(core.statistics.tcpStates.isEmpty)
    }
}
