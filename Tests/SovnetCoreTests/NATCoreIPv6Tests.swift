import SovnetWire
import Testing
@testable import SovnetCore

/// The NAT core over IPv6, with its host in memory: what the core asks of
/// the host for IPv6 guests, and what it sends them back, checked with the
/// wire layer's parsers (checksums over the IPv6 pseudo-header included).
@Suite struct NATCoreIPv6Tests {
    static let guest = IPv6Address("fd00::5894:efff:fee4:cee")!
    static let world = IPv6Address("2001:db8:55::1")!
    static let alias = IPv6Address("fd00::254")!
    static let gatewayMAC = NATCoreTests.gatewayMAC
    let start = ContinuousClock.now

    static func core(_ host: RecordingHost, settings: NATSettings = NATSettings()) -> NATCore {
        let link = GuestLink(port: NATCoreTests.port, mac: NATCoreTests.guestMAC)
        return NATCore(settings: settings, network: VirtualNetworkConfiguration(), host: host) {
            $0 == .v6(guest) ? link : nil
        }
    }

    /// An IPv6 packet from the guest to `destination` carrying `transport`'s bytes.
    static func packet(to destination: IPv6Address, _ proto: IPProtocol, _ transport: (inout [UInt8]) -> Void) -> [UInt8] {
        var body: [UInt8] = []
        transport(&body)
        var out: [UInt8] = []
        IPv6Header(source: guest, destination: destination, nextHeader: proto, payloadLength: body.count).emit(into: &out)
        return out + body
    }

    static func syn(to destination: IPv6Address, port: UInt16) -> [UInt8] {
        packet(to: destination, .tcp) {
            TCPHeader(sourcePort: 40000, destinationPort: port, sequenceNumber: 7, flags: [.syn], window: 64800,
                      options: TCPOptions(maximumSegmentSize: 1440)).emit(payload: [], source: .v6(guest), destination: .v6(destination),
                                                                         into: &$0)
        }
    }

    static func udp(to destination: IPv6Address, port: UInt16, _ payload: [UInt8]) -> [UInt8] {
        packet(to: destination, .udp) {
            UDPHeader(sourcePort: 50000, destinationPort: port).emit(payload: payload, source: .v6(guest),
                                                                     destination: .v6(destination), into: &$0)
        }
    }

    static func echoRequest(to destination: IPv6Address, identifier: UInt16) -> [UInt8] {
        packet(to: destination, .icmpv6) { out in
            [UInt8]("ping".utf8).withUnsafeBytes {
                ICMPv6View.emit(type: .echoRequest, header: UInt32(identifier) << 16 | 1, body: $0, source: guest,
                                destination: destination, into: &out)
            }
        }
    }

    func receive(_ core: NATCore, _ packet: [UInt8]) {
        packet.withUnsafeBytes { raw in
            guard let ip = try? IPv6View(raw) else { Issue.record("not an IPv6 packet"); return }
            core.receive(ip, from: GuestLink(port: NATCoreTests.port, mac: NATCoreTests.guestMAC), now: start)
        }
    }

    /// The IPv6 packets the core sent guests since the last call.
    static func drain(_ core: NATCore) throws -> [[UInt8]] {
        defer { core.frames.removeAll() }
        return try core.frames.storage.withUnsafeBytes { bytes in
            try core.frames.frames.map { frame in
                let ethernet = try EthernetView(UnsafeRawBufferPointer(rebasing: bytes[frame.range]))
                #expect(ethernet.etherType == .ipv6 && ethernet.destination == NATCoreTests.guestMAC)
                return Array(ethernet.payload)
            }
        }
    }

    @Test func aSYNConnectsAnIPv6HostSocketAndTheSYNACKOffersTheIPv6MSS() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        receive(core, Self.syn(to: Self.world, port: 80))
        guard case .connect(let id, .v6(Self.world), 80) = try #require(host.take().first) else {
            Issue.record("no IPv6 connect")
            return
        }
        core.hostSocketReady(id, readable: false, writable: true, now: start)
        let answer = try #require(try Self.drain(core).first)
        try answer.withUnsafeBytes { raw in
            let ip = try IPv6View(raw)
            #expect(ip.source == Self.world && ip.destination == Self.guest && ip.nextHeader == .tcp)
            let segment = try TCPView(ip.payload, source: .v6(ip.source), destination: .v6(ip.destination))
            #expect(segment.flags == [.syn, .ack] && segment.acknowledgmentNumber == 8)
            #expect(try segment.options().maximumSegmentSize == 1440, "1500 less 40 bytes of IPv6 and 20 of TCP")
        }
    }

    @Test func theHostAliasIsTheHostsLoopbackAndEverythingElseOfTheHostIsRefused() throws {
        let host = RecordingHost()
        host.addresses = HostAddressSet(ipv6Addresses: [IPv6Address("2001:db8:55::2")!])
        let core = Self.core(host)
        receive(core, Self.syn(to: Self.alias, port: 22))
        guard case .connect(_, .v6(.loopback), 22) = try #require(host.take().first) else { Issue.record("not ::1"); return }
        for refused in ["::1", "fe80::1", "::ffff:127.0.0.1", "ff02::1", "2001:db8:55::2", "::"] {
            receive(core, Self.syn(to: IPv6Address(refused)!, port: 22))
        }
        #expect(host.take().isEmpty, "no socket for a refused destination")
        #expect(core.statistics.drops == ["loopback-destination": 1, "link-local-destination": 1, "no-route": 3,
                                          "host-address": 1])
    }

    @Test func udpGoesOutOnAnIPv6SocketAndLongAnswersComeBackInFragments() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        receive(core, Self.udp(to: Self.world, port: 53, Array("question".utf8)))
        let commands = host.take()
        guard case .open(let id, .udp, .v6(Self.world), 53) = try #require(commands.first),
              case .send(id, let sent) = try #require(commands.last) else { Issue.record("\(commands)"); return }
        #expect(sent == Array("question".utf8))

        let answer = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        answer.withUnsafeBytes { core.receiveDatagram($0, on: id, now: start) }
        let fragments = try Self.drain(core)
        #expect(fragments.count == 3 && fragments.allSatisfy { $0.count <= 1500 })
        var reassembler = IPv6Reassembler()
        var whole: [UInt8]?
        for fragment in fragments {
            try fragment.withUnsafeBytes { raw in
                let ip = try IPv6View(raw)
                let upper = try ip.upperLayer()
                if case .complete(let packet) = reassembler.add(ip, try #require(upper.fragment), now: start) { whole = packet }
            }
        }
        try #require(whole).withUnsafeBytes { raw in
            let ip = try IPv6View(raw)
            let datagram = try UDPView(ip.payload, source: .v6(ip.source), destination: .v6(ip.destination))
            #expect(datagram.sourcePort == 53 && datagram.destinationPort == 50000 && Array(datagram.payload) == answer)
        }
    }

    @Test func aGuestsFragmentedDatagramGoesOutWhole() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        let payload = (0..<2500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let whole = Self.udp(to: Self.world, port: 9000, payload)
        let transport = Array(whole[40...])
        for (offset, more) in [(0, true), (1448, false)] {
            let data = Array(transport[offset..<(more ? 1448 : transport.count)])
            var packet: [UInt8] = []
            IPv6Header(source: Self.guest, destination: Self.world, nextHeader: .ipv6Fragment, payloadLength: 8 + data.count)
                .emit(into: &packet)
            IPv6FragmentHeader(nextHeader: .udp, offset: offset, moreFragments: more, identification: 99).emit(into: &packet)
            receive(core, packet + data)
        }
        let commands = host.take()
        guard case .send(_, let sent) = try #require(commands.last) else { Issue.record("\(commands)"); return }
        #expect(sent == payload)
    }

    @Test func echoGoesOutOnAnICMPv6PingSocketAndTheReplyCarriesTheGuestsIdentifier() throws {
        let host = RecordingHost()
        let core = Self.core(host)
        receive(core, Self.echoRequest(to: Self.alias, identifier: 77))
        let commands = host.take()
        guard case .open(let id, .echo, .v6(.loopback), 0) = try #require(commands.first) else { Issue.record("\(commands)"); return }
        var reply: [UInt8] = []
        [UInt8]("ping".utf8).withUnsafeBytes {
            ICMPv6View.emit(type: .echoReply, header: UInt32(4242) << 16 | 1, body: $0, source: .loopback, destination: .loopback,
                            into: &reply)
        }
        reply.withUnsafeBytes { core.receiveEcho($0, on: id, now: start) }
        let sent = try #require(try Self.drain(core).first)
        try sent.withUnsafeBytes { raw in
            let ip = try IPv6View(raw)
            #expect(ip.source == Self.alias && ip.destination == Self.guest)
            let icmp = try ICMPv6View(ip.payload, source: ip.source, destination: ip.destination)
            let echo = try icmp.echo()
            #expect(icmp.type == .echoReply && echo.identifier == 77 && echo.sequence == 1)
            #expect(Array(icmp.bytes[8...]) == Array("ping".utf8))
        }
    }

    @Test func noRouteOnTheHostIsToldAsAnICMPv6Unreachable() throws {
        let host = RecordingHost()
        host.datagramOpening = .failed(101)
        let core = Self.core(host)
        let request = Self.udp(to: Self.world, port: 53, [1, 2, 3])
        receive(core, request)
        let sent = try #require(try Self.drain(core).first)
        try sent.withUnsafeBytes { raw in
            let ip = try IPv6View(raw)
            let icmp = try ICMPv6View(ip.payload, source: ip.source, destination: ip.destination)
            #expect(icmp.type == .destinationUnreachable && icmp.code == ICMPv6UnreachableCode.noRoute)
            #expect(Array(icmp.bytes[8...]) == Array(request.prefix(48)), "it quotes the IPv6 header and the UDP header")
        }
    }

    @Test func aTranslationToIPv4CarriesIPv6EchoAndTCPOnIPv4Sockets() throws {
        let host = RecordingHost()
        var settings = NATSettings()
        let virtual = IPv6Address("fd00::253")!
        settings.policy.translations[.v6(virtual)] = .v4(IPv4Address(127, 0, 0, 1))
        let core = Self.core(host, settings: settings)
        receive(core, Self.syn(to: virtual, port: 8080))
        guard case .connect(_, .v4(IPv4Address(127, 0, 0, 1)), 8080) = try #require(host.take().first) else {
            Issue.record("not an IPv4 connect")
            return
        }
        receive(core, Self.echoRequest(to: virtual, identifier: 9))
        let commands = host.take()
        guard case .open(let id, .echo, .v4(IPv4Address(127, 0, 0, 1)), 0) = try #require(commands.first),
              case .send(id, let request) = try #require(commands.last) else { Issue.record("\(commands)"); return }
        #expect(request.first == ICMPv4Type.echoRequest.rawValue && Array(request[8...]) == Array("ping".utf8))
        var reply: [UInt8] = []
        [UInt8]("ping".utf8).withUnsafeBytes { ICMPv4Header.echo(.echoReply, identifier: 4242, sequence: 1).emit(body: $0, into: &reply) }
        reply.withUnsafeBytes { core.receiveEcho($0, on: id, now: start) }
        let sent = try #require(try Self.drain(core).first)
        try sent.withUnsafeBytes { raw in
            let ip = try IPv6View(raw)
            let icmp = try ICMPv6View(ip.payload, source: ip.source, destination: ip.destination)
            let echo = try icmp.echo()
            #expect(ip.source == virtual && icmp.type == .echoReply && echo.identifier == 9 && echo.sequence == 1)
        }
    }
}
