import SovnetWire
import Testing
@testable import SovnetCore

/// Hostile IPv6 guests on the switch: sources and neighbour advertisements
/// bound to the port that used an address first, link-layer options that
/// must name the frame's sender, and the bounds on bindings.
@Suite struct IPv6SourceTests {
    static let first = MACAddress(0x02, 0, 0, 0, 0, 0x0A)
    static let second = MACAddress(0x02, 0, 0, 0, 0, 0x0B)
    static let gateway = IPv6Address("fd00::1")!
    let now = ContinuousClock.now

    /// A frame from `mac` carrying an ICMPv6 message of `type` (its body after the checksum) from `source` to `destination`.
    static func icmpv6(from mac: MACAddress, _ source: IPv6Address, to destination: IPv6Address, type: ICMPv6Type,
                       body: [UInt8], hopLimit: UInt8 = 255, toMAC: MACAddress = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD)) -> [UInt8] {
        var message: [UInt8] = []
        ICMPv6View.emit(type: type, body: body, source: source, destination: destination, into: &message)
        var out: [UInt8] = []
        EthernetHeader(destination: toMAC, source: mac, etherType: .ipv6).emit(into: &out)
        IPv6Header(source: source, destination: destination, nextHeader: .icmpv6, payloadLength: message.count,
                   hopLimit: hopLimit).emit(into: &out)
        return out + message
    }

    static func ping(from mac: MACAddress, _ source: IPv6Address) -> [UInt8] {
        icmpv6(from: mac, source, to: gateway, type: .echoRequest, body: [0, 1, 0, 1], hopLimit: 64)
    }

    static func advertisement(from mac: MACAddress, _ source: IPv6Address, target: IPv6Address, naming named: MACAddress) -> [UInt8] {
        icmpv6(from: mac, source, to: .allNodes, type: .neighborAdvertisement,
               body: NDPOption.advertisementBody(router: false, solicited: false, override: true, target: target,
                                                 options: [.targetLinkLayer(named)]),
               toMAC: IPv6Address.allNodes.multicastMAC)
    }

    func send(_ network: VirtualNetwork, _ frame: [UInt8], from port: PortID) -> [Delivery] {
        frame.withUnsafeBytes { network.receive($0, from: port, now: now) }
    }

    func drops(_ network: VirtualNetwork) -> Int { network.counters.drops[.spoofedAddress] ?? 0 }

    @Test func anAddressBelongsToThePortThatUsedItFirst() {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let (a, b) = (network.attach(), network.attach())
        let address = IPv6Address("fd00::a")!
        #expect(send(network, Self.ping(from: Self.first, address), from: a).contains { if case .send = $0 { true } else { false } })
        #expect(network.neighbor(.v6(address)) == GuestLink(port: a, mac: Self.first))
        #expect(send(network, Self.ping(from: Self.second, address), from: b).isEmpty)
        #expect(drops(network) == 1)
        // Nor may the other guest claim it in an advertisement, from an address of its own.
        let own = IPv6Address("fd00::b")!
        #expect(send(network, Self.advertisement(from: Self.second, own, target: address, naming: Self.second), from: b).isEmpty)
        #expect(drops(network) == 2)
        #expect(network.neighbor(.v6(address))?.port == a)
        // Once the first guest's port is gone, the address is free.
        network.detach(a, now: now)
        _ = send(network, Self.ping(from: Self.second, address), from: b)
        #expect(network.neighbor(.v6(address)) == GuestLink(port: b, mac: Self.second))
        #expect(drops(network) == 2)
    }

    @Test func aGuestThatComesBackTakesItsAddressesWithIt() {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let old = network.attach()
        let address = IPv6Address("fd00::a")!
        _ = send(network, Self.ping(from: Self.first, address), from: old)
        _ = network.takeBindingChanges()
        network.detach(old, now: now)
        let new = network.attach()
        _ = send(network, Self.ping(from: Self.first, address), from: new)
        #expect(network.takeBindingChanges() == [BindingChange(address: .v6(address), link: GuestLink(port: new, mac: Self.first),
                                                               from: old)])
    }

    @Test func forgedSourcesAndLinkLayerOptionsAreDropped() {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        // Off the link, the gateway's own address, and the unspecified address on anything but solicitations.
        for source in ["2001:db8::1", "fd00::1", "fd00::254", "::"] {
            _ = send(network, Self.ping(from: Self.first, IPv6Address(source)!), from: port)
        }
        #expect(drops(network) == 4)
        // An advertisement naming another MAC than the frame's.
        let own = IPv6Address("fd00::a")!
        _ = send(network, Self.advertisement(from: Self.first, own, target: own, naming: Self.second), from: port)
        #expect(drops(network) == 5)
        // Duplicate address detection from :: is what a guest without an address may send.
        let detection = Self.icmpv6(from: Self.first, .any, to: own.solicitedNode, type: .neighborSolicitation,
                                    body: [0, 0, 0, 0] + { var bytes: [UInt8] = []; own.append(to: &bytes); return bytes }(),
                                    toMAC: own.solicitedNode.multicastMAC)
        _ = send(network, detection, from: port)
        #expect(drops(network) == 5)
    }

    @Test func bindingsAreBoundedPerPortAndInAll() {
        var bindings = IPv6Bindings(maximumPerPort: 4, maximumTotal: 6)
        let now = ContinuousClock.now
        func address(_ low: UInt64) -> IPv6Address { IPv6Address(high: 0xFD00 << 48, low: low) }
        for index in 0..<5 {
            #expect(bindings.claim(address(UInt64(index + 1)), mac: Self.first, port: PortID(1), now: now + .seconds(index))
                    == .bound(from: nil))
        }
        #expect(bindings.count == 4 && bindings[address(1)] == nil, "the least recently used gave way")
        for index in 0..<2 {
            _ = bindings.claim(address(UInt64(100 + index)), mac: Self.second, port: PortID(2), now: now)
        }
        #expect(bindings.claim(address(200), mac: Self.second, port: PortID(2), now: now) == .refused,
                "the total is reached and every port is live")
        bindings.portLeft(PortID(1))
        #expect(bindings.claim(address(200), mac: Self.second, port: PortID(2), now: now) == .bound(from: nil),
                "a departed port's binding gives way")
        #expect(bindings.claim(address(5), mac: Self.first, port: PortID(3), now: now) == .bound(from: PortID(1)),
                "its guest, back on another port, takes its address back")
    }
}
