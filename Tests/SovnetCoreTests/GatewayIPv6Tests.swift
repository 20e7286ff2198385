import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore

/// The gateway's IPv6, driven by what a Linux guest sent when IPv6 came up
/// (`captures/ipv6.pcap`, recorded against a peer at fd00::1 with the
/// gateway's MAC): its router solicitation gets an advertisement of
/// fd00::/64, its neighbour solicitation for fd00::1 an advertisement, its
/// echo request a reply; a guest's own router advertisement is dropped.
@Suite struct GatewayIPv6Tests {
    static let capture = DHCPClientTests.captures.appendingPathComponent("ipv6.pcap").path
    static let guestMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    let now = ContinuousClock.now

    static func guestFrames(_ filter: String) throws -> [[UInt8]] {
        try PcapReader.frames(at: capture, filter: filter).map(\.bytes).filter { Array($0[6..<12]) == guestMAC.octets }
    }

    /// The one frame the gateway answers `frame` with: its destination MAC, IPv6 header and ICMPv6 message.
    func answer(_ network: VirtualNetwork, _ frame: [UInt8], port: PortID) throws -> (MACAddress, IPv6Header, [UInt8])? {
        let replies = frame.withUnsafeBytes { network.receive($0, from: port, now: now) }.compactMap { delivery -> [UInt8]? in
            if case .send(let bytes, let target) = delivery, target == port { bytes } else { nil }
        }
        guard let reply = replies.first else { return nil }
        #expect(replies.count == 1)
        return try reply.withUnsafeBytes { raw in
            let ethernet = try EthernetView(raw)
            let ip = try IPv6View(ethernet.payload)
            let icmp = try ICMPv6View(ip.payload, source: ip.source, destination: ip.destination)
            return (ethernet.destination, IPv6Header(source: ip.source, destination: ip.destination, nextHeader: ip.nextHeader,
                                                     payloadLength: ip.payloadLength, hopLimit: ip.hopLimit), Array(icmp.bytes))
        }
    }

    @Test func aRecordedRouterSolicitationGetsThePrefixForSLAAC() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let solicitation = try #require(try Self.guestFrames("icmp6 and ip6[40] == 133").first)
        let (mac, header, message) = try #require(try answer(network, solicitation, port: port))
        #expect(mac == Self.guestMAC && header.hopLimit == 255)
        #expect(header.source == IPv6Address(linkLocalFor: network.configuration.gatewayMAC))
        #expect(header.destination.description == "fe80::5894:efff:fee4:cee")
        try message.withUnsafeBytes { raw in
            let icmp = try ICMPv6View(raw, source: nil, destination: nil)
            let advertisement = try icmp.routerAdvertisement()
            #expect(advertisement.routerLifetime == 1800 && !advertisement.managed, "the default router, addresses by SLAAC")
            let options = try icmp.options()
            #expect(options.contains(.sourceLinkLayer(network.configuration.gatewayMAC)))
            #expect(options.contains(.mtu(1500)))
            #expect(options.contains(.prefix(IPv6Address(high: 0xFD00 << 48, low: 0), length: 64, onLink: true, autonomous: true,
                                             validLifetime: 86_400, preferredLifetime: 14_400)))
            #expect(options.contains(.dnsServers([IPv6Address(high: 0xFD00 << 48, low: 1)], lifetime: 1800)))
        }
    }

    @Test func recordedNeighbourSolicitationAndEchoForTheGatewayAreAnswered() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let solicitation = try #require(try Self.guestFrames("icmp6 and ip6[40] == 135 and ip6 src fd00::2").first)
        let (mac, header, message) = try #require(try answer(network, solicitation, port: port))
        #expect(mac == Self.guestMAC && header.hopLimit == 255 && header.destination.description == "fd00::2")
        try message.withUnsafeBytes { raw in
            let icmp = try ICMPv6View(raw, source: nil, destination: nil)
            let target = try icmp.target()
            #expect(icmp.type == .neighborAdvertisement && target.description == "fd00::1")
            let flags = icmp.advertisementFlags
            #expect(flags.router && flags.solicited && flags.override)
            #expect(try icmp.options() == [.targetLinkLayer(network.configuration.gatewayMAC)])
        }
        for request in try Self.guestFrames("icmp6 and ip6[40] == 128") {
            let (_, reply, echo) = try #require(try answer(network, request, port: port))
            #expect(reply.source.description == "fd00::1" && reply.destination.description == "fd00::2")
            let asked = request.withUnsafeBytes { Array($0[(14 + 40 + 4)...]) }
            #expect(echo[0] == ICMPv6Type.echoReply.rawValue && Array(echo[4...]) == asked, "the same id, sequence and data")
        }
        // Duplicate address detection of the guest's own address is not the gateway's to answer.
        let detection = try #require(try Self.guestFrames("icmp6 and ip6[40] == 135 and ip6 src ::").first)
        #expect(try answer(network, detection, port: port) == nil)
    }

    @Test func routerMessagesFromGuestsAreDroppedNotSwitched() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        _ = network.attach()
        var impostor = GatewayIPv6.frame(to: IPv6Address.allNodes.multicastMAC, from: IPv6Address(linkLocalFor: Self.guestMAC),
                                         to: .allNodes, hopLimit: 255, type: .routerAdvertisement,
                                         body: GatewayIPv6.advertisement(network.configuration), network.configuration)
        impostor.replaceSubrange(6..<12, with: Self.guestMAC.octets)
        #expect(impostor.withUnsafeBytes { network.receive($0, from: port, now: now) }.isEmpty)
        #expect(network.counters.drops[.guestRouterMessage] == 1)
    }
}
