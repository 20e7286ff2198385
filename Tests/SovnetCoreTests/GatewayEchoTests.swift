import SovnetWire
import Testing
@testable import SovnetCore

/// The gateway's own echo requests to a guest, and how replies are kept.
@Suite struct GatewayEchoTests {
    let now = ContinuousClock.now
    let guestMAC = MACAddress(0x02, 0, 0, 0, 0, 0x20)
    let guestIP = IPv4Address(192, 168, 127, 20)

    /// A guest at `guestIP` known to the network by an ARP request it sent.
    func networkWithGuest() -> (VirtualNetwork, PortID) {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        var arp: [UInt8] = []
        EthernetHeader(destination: .broadcast, source: guestMAC, etherType: .arp).emit(into: &arp)
        ARPPacket(operation: .request, senderMAC: guestMAC, senderIP: guestIP, targetMAC: .zero,
                  targetIP: network.configuration.gatewayAddress).emit(into: &arp)
        _ = arp.withUnsafeBytes { network.receive($0, from: port, now: now) }
        return (network, port)
    }

    /// What a guest's stack answers to an echo request: addresses swapped, type 0.
    func reply(to request: [UInt8], identifier: UInt16? = nil) throws -> [UInt8] {
        try request.withUnsafeBytes { bytes in
            let ethernet = try EthernetView(bytes)
            let ip = try IPv4View(ethernet.payload)
            let icmp = try ICMPv4View(ip.payload)
            var out: [UInt8] = []
            EthernetHeader(destination: ethernet.source, source: ethernet.destination, etherType: .ipv4).emit(into: &out)
            IPv4Header(source: ip.destination, destination: ip.source, protocol: .icmp,
                       payloadLength: ip.payload.count, ttl: 64, identification: 7).emit(into: &out)
            ICMPv4Header.echo(.echoReply, identifier: identifier ?? icmp.identifier, sequence: icmp.sequence)
                .emit(body: icmp.body, into: &out)
            return out
        }
    }

    @Test func requestsReachTheGuestAndRepliesAreKept() throws {
        let (network, port) = networkWithGuest()
        let delivery = try #require(network.echoRequest(to: .v4(guestIP), identifier: 0x5151, sequence: 3))
        guard case .send(let request, let target) = delivery else {
            Issue.record("expected a frame to send")
            return
        }
        #expect(target == port)
        try request.withUnsafeBytes { bytes in
            let ethernet = try EthernetView(bytes)
            #expect(ethernet.destination == guestMAC && ethernet.source == network.configuration.gatewayMAC)
            let ip = try IPv4View(ethernet.payload)
            #expect(ip.source == network.configuration.gatewayAddress && ip.destination == guestIP)
            let icmp = try ICMPv4View(ip.payload)
            #expect(icmp.type == .echoRequest && icmp.identifier == 0x5151 && icmp.sequence == 3 && icmp.body.count == 56)
        }
        let later = now + .milliseconds(2)
        let answer = try reply(to: request)
        #expect(answer.withUnsafeBytes { network.receive($0, from: port, now: later) }.isEmpty)
        #expect(network.takeEchoReplies(identifier: 0x5151)
            == [GatewayEchoReply(source: .v4(guestIP), identifier: 0x5151, sequence: 3, received: later)])
        #expect(network.takeEchoReplies(identifier: 0x5151).isEmpty)
    }

    @Test func repliesToOtherIdentifiersAreDropped() throws {
        let (network, port) = networkWithGuest()
        guard case .send(let request, _)? = network.echoRequest(to: .v4(guestIP), identifier: 1, sequence: 1) else {
            Issue.record("expected a frame to send")
            return
        }
        let stray = try reply(to: request, identifier: 2)
        _ = stray.withUnsafeBytes { network.receive($0, from: port, now: now) }
        #expect(network.counters.drops[.noService] == 1)
        #expect(network.endEcho(identifier: 1).isEmpty)
        // Once the gateway stopped listening, late replies are dropped too.
        let late = try reply(to: request)
        _ = late.withUnsafeBytes { network.receive($0, from: port, now: now) }
        #expect(network.counters.drops[.noService] == 2)
    }

    @Test func unknownAddressesGetNoRequest() {
        let (network, _) = networkWithGuest()
        #expect(network.echoRequest(to: .v4(IPv4Address(192, 168, 127, 99)), identifier: 1, sequence: 1) == nil)
    }

    @Test func anIPv6GuestIsPingedOverICMPv6() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let guest = IPv6Address("fd00::a")!
        let mac = IPv6SourceTests.first
        _ = IPv6SourceTests.ping(from: mac, guest).withUnsafeBytes { network.receive($0, from: port, now: now) }
        guard case .send(let request, port)? = network.echoRequest(to: .v6(guest), identifier: 0x6161, sequence: 4) else {
            Issue.record("expected a frame to the guest's port")
            return
        }
        let body = try request.withUnsafeBytes { raw -> [UInt8] in
            let ip = try IPv6View(try EthernetView(raw).payload)
            let icmp = try ICMPv6View(ip.payload, source: ip.source, destination: ip.destination)
            #expect(ip.source.description == "fd00::1" && icmp.type == .echoRequest)
            return Array(icmp.bytes[4...])
        }
        let reply = IPv6SourceTests.icmpv6(from: mac, guest, to: IPv6Address("fd00::1")!, type: .echoReply, body: body, hopLimit: 64)
        #expect(reply.withUnsafeBytes { network.receive($0, from: port, now: now) }.isEmpty)
        #expect(network.endEcho(identifier: 0x6161) == [GatewayEchoReply(source: .v6(guest), identifier: 0x6161, sequence: 4,
                                                                           received: now)])
    }
}
