import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore

/// The gateway's DHCPv6 server answering the messages ISC dhclient sent in
/// `captures/dhcpv6.pcap`, through the virtual network: stateless always,
/// addresses when it has a pool, each tied to the port that asked.
@Suite struct DHCPv6ServerTests {
    static let capture = DHCPClientTests.captures.appendingPathComponent("dhcpv6.pcap").path
    let now = ContinuousClock.now

    /// The client's recorded frames (UDP to port 547), in order: solicit, request, release, information-request.
    static func clientFrames() throws -> [[UInt8]] {
        try PcapReader.frames(at: capture, filter: "udp dst port 547").map(\.bytes)
    }

    /// The server's answer to a client frame, parsed; nil when none came.
    func answer(_ network: VirtualNetwork, _ frame: [UInt8], port: PortID) throws -> DHCPv6Message? {
        let replies = frame.withUnsafeBytes { network.receive($0, from: port, now: now) }.compactMap { delivery -> [UInt8]? in
            if case .send(let bytes, port) = delivery { bytes } else { nil }
        }
        guard let reply = replies.first else { return nil }
        return try reply.withUnsafeBytes { raw in
            let ethernet = try EthernetView(raw)
            let ip = try IPv6View(ethernet.payload)
            #expect(ip.source == network.configuration.gatewayLinkLocal && ip.destination.isLinkLocal)
            let udp = try UDPView(ip.payload, source: .v6(ip.source), destination: .v6(ip.destination))
            #expect(udp.sourcePort == 547 && udp.destinationPort == 546)
            return try DHCPv6Message.parse(udp.payload)
        }
    }

    /// The DHCPv6 message of a recorded frame.
    static func payload(_ frame: [UInt8]) throws -> [UInt8] {
        try frame.withUnsafeBytes { raw in
            let ip = try IPv6View(try EthernetView(raw).payload)
            return Array(try UDPView(ip.payload).payload)
        }
    }

    /// `frame` with its DHCPv6 message replaced by `payload` (checksum made
    /// anew), sent from `mac` and its link-local address when given.
    static func replacing(_ frame: [UInt8], with payload: [UInt8], from mac: MACAddress? = nil) throws -> [UInt8] {
        try frame.withUnsafeBytes { raw in
            let ethernet = try EthernetView(raw)
            let ip = try IPv6View(ethernet.payload)
            let source = mac.map { IPv6Address(linkLocalFor: $0) } ?? ip.source
            var out: [UInt8] = []
            EthernetHeader(destination: ethernet.destination, source: mac ?? ethernet.source, etherType: .ipv6).emit(into: &out)
            IPv6Header(source: source, destination: ip.destination, nextHeader: .udp, payloadLength: 8 + payload.count,
                       hopLimit: ip.hopLimit).emit(into: &out)
            UDPHeader(sourcePort: 546, destinationPort: 547).emit(payload: payload, source: .v6(source),
                                                                  destination: .v6(ip.destination), into: &out)
            return out
        }
    }

    @Test func statelessConfigurationAndNoAddressesWithoutAPool() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let frames = try Self.clientFrames()
        let information = try #require(try answer(network, frames[3], port: port))
        #expect(information.type == .reply && information.options.contains(.dnsServers([IPv6Address("fd00::1")!])))
        #expect(information.serverID == [0, 3, 0, 1, 0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD], "DUID-LL of the gateway's MAC")
        let advertise = try #require(try answer(network, frames[0], port: port))
        #expect(advertise.type == .advertise && advertise.identityAssociations.isEmpty)
        #expect(advertise.options.contains { if case .status(.noAddressesAvailable, _) = $0 { true } else { false } })
        #expect(try answer(network, frames[1], port: port) == nil, "a REQUEST for another server's offer is not ours")
        #expect(network.counters.dhcpv6 == ["inf-req": 1, "solicit": 1, "request": 1])
    }

    @Test func anAddressFromThePoolIsLeasedToThePortThatAsked() throws {
        var configuration = VirtualNetworkConfiguration()
        configuration.dhcpv6Pool = VirtualNetworkConfiguration.defaultDHCPv6Pool
        let network = VirtualNetwork(configuration: configuration)
        let (port, other) = (network.attach(), network.attach())
        let frames = try Self.clientFrames()
        let advertise = try #require(try answer(network, frames[0], port: port))
        let offered = try #require(advertise.identityAssociations.first?.addresses.first)
        #expect(offered.address.description == "fd00::1:0" && offered.validLifetime == 3600)
        // The recorded REQUEST names dnsmasq's server: it is sent again naming ours.
        var request = try DHCPv6Message.parse(try Self.payload(frames[1]))
        request.options = request.options.map { if case .serverID = $0 { .serverID(advertise.serverID!) } else { $0 } }
        let requested = try Self.replacing(frames[1], with: request.bytes)
        let reply = try #require(try answer(network, requested, port: port))
        #expect(reply.type == .reply && reply.identityAssociations.first?.addresses.first?.address == offered.address)
        #expect(reply.identityAssociations.first?.renewalTime == 1800)
        #expect(network.neighbor(.v6(offered.address))?.port == port, "the address is bound to the port that asked")
        #expect(network.takeDHCPv6Events() == [.leased(offered.address, port)])
        // A guest on another port that copies the client's DUID gets no binding there.
        request.type = .renew
        let copier = MACAddress(0x02, 0, 0, 0, 0, 0x0B)
        let renewElsewhere = try #require(try answer(network, try Self.replacing(frames[1], with: request.bytes, from: copier),
                                                     port: other))
        #expect(renewElsewhere.identityAssociations.first?.options.contains { if case .status(.noBinding, _) = $0 { true } else { false } } == true)
        // RELEASE gives it back.
        var release = request
        release.type = .release
        let released = try #require(try answer(network, try Self.replacing(frames[2], with: release.bytes), port: port))
        #expect(released.options.contains(.status(.success, "released")))
        #expect(network.takeDHCPv6Events() == [.released(offered.address)])
    }

    @Test func malformedMessagesAreCountedNotAnswered() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let truncated = try Self.replacing(try Self.clientFrames()[0], with: [1, 0, 0, 1, 0, 1, 0, 8, 0])
        #expect(try answer(network, truncated, port: port) == nil)
        #expect(network.counters.drops[.malformedDHCP] == 1)
    }
}

