import SovnetWire
import Testing
@testable import SovnetCore
@testable import SovnetGuestCore

/// The guest side's router discovery against the gateway itself: its
/// solicitation gets the gateway's advertisement, whose DNS servers are
/// kept for their lifetime.
@Suite struct RouterDiscoveryTests {
    static let mac = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    let now = ContinuousClock.now

    /// The gateway's answer to the forwarder's solicitation.
    func advertisement(_ configuration: VirtualNetworkConfiguration = VirtualNetworkConfiguration()) throws -> [UInt8] {
        let network = VirtualNetwork(configuration: configuration)
        let port = network.attach()
        let deliveries = RouterDiscovery.solicitation(from: Self.mac).withUnsafeBytes { network.receive($0, from: port, now: now) }
        guard case .send(let frame, port)? = deliveries.first(where: { if case .send = $0 { true } else { false } }) else {
            throw ShellLikeError("no advertisement: \(deliveries)")
        }
        return frame
    }

    @Test func theSolicitationIsAnsweredToAllNodesWithTheGatewaysDNSServer() throws {
        let frame = try advertisement()
        try frame.withUnsafeBytes { raw in
            let ethernet = try EthernetView(raw)
            #expect(ethernet.destination == IPv6Address.allNodes.multicastMAC, "the solicitation came from ::")
        }
        var discovery = RouterDiscovery()
        #expect(frame.withUnsafeBytes { discovery.receive($0, now: now) })
        #expect(discovery.dnsServers(now: now) == [IPv6Address("fd00::1")!])
        #expect(!frame.withUnsafeBytes { discovery.receive($0, now: now) }, "the same servers again change nothing")
        #expect(discovery.dnsServers(now: now + .seconds(1801)).isEmpty, "kept for the option's lifetime, 1800 s")
        #expect(discovery.expire(now: now + .seconds(1801)) && discovery.nextDeadline == nil)
    }

    @Test func advertisementsThatARouterCouldNotHaveSentAreIgnored() throws {
        var forwarded = try advertisement()
        forwarded[14 + 7] = 64  // a hop limit below 255: it crossed a router
        var discovery = RouterDiscovery()
        #expect(!forwarded.withUnsafeBytes { discovery.receive($0, now: now) })
        var corrupted = try advertisement()
        corrupted[corrupted.count - 1] ^= 0xFF  // the checksum no longer holds
        #expect(!corrupted.withUnsafeBytes { discovery.receive($0, now: now) })
        #expect(discovery.dnsServers(now: now).isEmpty)
    }

    @Test func theSearchDomainsTravelInTheAdvertisement() throws {
        var configuration = VirtualNetworkConfiguration()
        configuration.searchDomains = ["example.test", "vm.example.test"]
        let frame = try advertisement(configuration)
        var discovery = RouterDiscovery()
        #expect(frame.withUnsafeBytes { discovery.receive($0, now: now) })
        #expect(discovery.searchDomains(now: now) == ["example.test", "vm.example.test"])
        #expect(discovery.expire(now: now + .seconds(1801)) && discovery.searchDomains(now: now + .seconds(1801)).isEmpty)
        #expect(NDPOption.searchDomains([0xC0, 0x0C, 0, 0, 0, 0, 0, 0]) == nil, "compressed names are refused")
    }
}
