import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore
import SovnetGuestCore

/// The virtual network core fed with frames recorded from a real guest of
/// gvproxy, compared with what gvproxy answered, and with sovnet's own DHCP
/// client as a second guest.
@Suite struct VirtualNetworkTests {
    static let gvproxyCapture = DHCPClientTests.captures.appendingPathComponent("gvproxy-v0.6.2-guest-tap.pcap").path
    static let guestMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    static let gatewayMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD)
    let now = ContinuousClock.now

    /// Frames of the gvproxy capture, split into what the guest sent and what gvproxy answered.
    static func recorded(_ filter: String) throws -> (guest: [[UInt8]], gvproxy: [[UInt8]]) {
        let frames = try PcapReader.frames(at: gvproxyCapture, filter: filter).map(\.bytes)
        return (frames.filter { Array($0[6..<12]) == guestMAC.octets }, frames.filter { Array($0[6..<12]) != guestMAC.octets })
    }

    func sent(_ deliveries: [Delivery]) -> [[UInt8]] {
        deliveries.compactMap { if case .send(let frame, _) = $0 { frame } else { nil } }
    }

    func receive(_ network: VirtualNetwork, _ frame: [UInt8], from port: PortID) -> [Delivery] {
        frame.withUnsafeBytes { network.receive($0, from: port, now: now) }
    }

    @Test func arpRepliesMatchGvproxyByteForByte() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let (requests, replies) = try Self.recorded("arp")
        #expect(requests.count == 2 && replies.count == 2)
        for (request, expected) in zip(requests, replies) {
            #expect(sent(receive(network, request, from: port)) == [expected])
        }
        #expect(network.counters.arpReplies == 2)
    }

    @Test func echoRepliesCarryWhatGvproxyCarried() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let (requests, replies) = try Self.recorded("icmp and host 192.168.127.1")
        for (request, expected) in zip(requests, replies) {
            let reply = try #require(sent(receive(network, request, from: port)).first)
            // The IP identification, flags and so the header checksum are each
            // stack's own; addresses, TTL, protocol and the whole ICMP message match.
            #expect(Array(reply[..<18]) == Array(expected[..<18]))
            #expect(Array(reply[22..<24]) == Array(expected[22..<24]))
            #expect(Array(reply[26...]) == Array(expected[26...]))
        }
        // Echo to the virtual address is the NAT's to carry (to the host's
        // loopback); the switch makes no reply of its own.
        let (toHost, _) = try Self.recorded("icmp and host 192.168.127.254")
        #expect(receive(network, toHost[0], from: port) == [.nat])
    }

    @Test func addressesAreLearnedAndCannotBeTakenByAnotherGuest() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let first = network.attach(), second = network.attach()
        let (requests, _) = try Self.recorded("icmp and host 192.168.127.1")
        _ = receive(network, requests[0], from: first)
        #expect(network.neighbor(IPv4Address(192, 168, 127, 2)) == GuestLink(port: first, mac: Self.guestMAC))
        // The same address from another MAC on another port is spoofing.
        var spoofed = requests[0]
        spoofed.replaceSubrange(6..<12, with: [0x02, 0, 0, 0, 0, 0x99])
        #expect(receive(network, spoofed, from: second).isEmpty)
        #expect(network.counters.drops[.spoofedAddress] == 1)
        // Once the first guest is gone, the static address is still its MAC's only: the guest may come back on another port.
        network.detach(first, now: now)
        #expect(receive(network, spoofed, from: second).isEmpty)
        #expect(network.counters.drops[.spoofedAddress] == 2)
        #expect(!receive(network, requests[0], from: second).isEmpty)
        #expect(network.neighbor(IPv4Address(192, 168, 127, 2)) == GuestLink(port: second, mac: Self.guestMAC))
    }

    @Test func dhcpFromRecordedUdhcpcGetsGvproxysAnswers() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let (requests, replies) = try Self.recorded("udp port 67")
        for (request, expected) in zip(requests, replies) {
            let reply = try #require(sent(receive(network, request, from: port)).first)
            let ours = try DHCPMessage.parse(Array(reply[42...]))
            let theirs = try DHCPMessage.parse(Array(expected[42...]))
            #expect(ours.messageType == theirs.messageType)
            #expect(ours.yourAddress == theirs.yourAddress && ours.yourAddress == IPv4Address(192, 168, 127, 2))
            #expect(ours.transactionID == theirs.transactionID)
            for code: DHCPOptionCode in [.subnetMask, .router, .domainNameServer, .leaseTime, .serverIdentifier, .interfaceMTU] {
                #expect(ours.options[code] == theirs.options[code], "option \(code.rawValue)")
            }
            #expect(ours.options.renewalTime == 1800 && ours.options.rebindingTime == 3150)
        }
        #expect(network.dhcp.leases.map(\.address) == [IPv4Address(192, 168, 127, 2)])
        #expect(network.counters.dhcp == ["offers": 1, "acks": 1])
    }

    /// sovnet's own client as a guest: a dynamic address, a unicast renewal,
    /// INIT-REBOOT after a reconnect on a new port, and RELEASE.
    @Test func sovnetClientLifecycle() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        var port = network.attach()
        let mac = MACAddress(0x02, 0, 0, 0, 0, 0x10)
        var client = DHCPClient(configuration: DHCPClientConfiguration(mac: mac, hostName: "second"), seed: 9)
        /// Runs actions through the network until the client has nothing more to send.
        func run(_ actions: [DHCPClientAction], at time: ContinuousClock.Instant) {
            var pending = actions
            while !pending.isEmpty {
                let action = pending.removeFirst()
                guard case .send(let frame) = action else { continue }
                for reply in sent(frame.withUnsafeBytes { network.receive($0, from: port, now: time) }) {
                    pending += reply.withUnsafeBytes { client.receive($0, now: time) } ?? []
                }
            }
        }
        run(client.start(now: now), at: now)
        #expect(client.state == .bound)
        #expect(client.lease?.address == IPv4Address(192, 168, 127, 3), "the pool skips .1 and the static .2")
        #expect(client.lease?.serverMAC == Self.gatewayMAC)

        run(client.tick(now: now + .seconds(1800)), at: now + .seconds(1800))
        #expect(client.state == .bound)
        #expect(network.counters.dhcp["acks"] == 2)

        network.detach(port, now: now)
        port = network.attach()
        run(client.linkRestored(now: now + .seconds(1900)), at: now + .seconds(1900))
        #expect(client.state == .bound && client.lease?.address == IPv4Address(192, 168, 127, 3))

        run(client.release(now: now + .seconds(2000)), at: now + .seconds(2000))
        #expect(network.dhcp.leases.isEmpty)
        #expect(network.counters.dhcp["releases"] == 1)
    }

    @Test func naksAndDeclines() throws {
        var server = DHCPServer(configuration: VirtualNetworkConfiguration().dhcp)
        let other = MACAddress(0x02, 0, 0, 0, 0, 0x20)
        func request(_ mac: MACAddress, _ type: DHCPMessageType, requested: IPv4Address? = nil,
                     server id: IPv4Address? = nil) -> DHCPMessage {
            var message = DHCPMessage(operation: .request, transactionID: 7, clientMAC: mac)
            message.options.messageType = type
            message.options.requestedIPAddress = requested
            message.options.serverIdentifier = id
            return message
        }
        // Each client on a port of its own.
        var ports: [MACAddress: PortID] = [:]
        func handle(_ message: DHCPMessage, now: ContinuousClock.Instant) -> (reply: DHCPMessage?, event: DHCPServerEvent) {
            let mac = message.clientMAC!
            let port = ports[mac] ?? PortID(ports.count + 1)
            ports[mac] = port
            return server.handle(message, from: port, now: now)
        }
        // INIT-REBOOT for an address of another subnet, and for the static address of another MAC.
        #expect(handle(request(other, .request, requested: IPv4Address(10, 0, 0, 5)), now: now).reply?.messageType == .nak)
        #expect(handle(request(other, .request, requested: IPv4Address(192, 168, 127, 2)), now: now).reply?.messageType == .nak)
        // A free address of the subnet is granted (authoritative).
        #expect(handle(request(other, .request, requested: IPv4Address(192, 168, 127, 40)), now: now).reply?.yourAddress
                == IPv4Address(192, 168, 127, 40))
        // A third client cannot take it.
        let third = MACAddress(0x02, 0, 0, 0, 0, 0x30)
        #expect(handle(request(third, .request, requested: IPv4Address(192, 168, 127, 40)), now: now).reply?.messageType == .nak)
        // DECLINE keeps an address out of the pool.
        let offered = handle(request(third, .discover), now: now).reply?.yourAddress
        #expect(offered == IPv4Address(192, 168, 127, 3))
        _ = handle(request(third, .decline, requested: offered), now: now)
        #expect(handle(request(third, .discover), now: now).reply?.yourAddress == IPv4Address(192, 168, 127, 4))
        // A REQUEST for another server's offer withdraws ours silently.
        let chosenElsewhere = handle(request(third, .request, requested: IPv4Address(192, 168, 127, 4),
                                                    server: IPv4Address(192, 168, 127, 9)), now: now)
        #expect(chosenElsewhere.reply == nil)
        #expect(!server.leases.contains { $0.mac == third })
        // Offers lapse after a minute; declined addresses come back after ten.
        #expect(handle(request(third, .discover), now: now).reply?.yourAddress == IPv4Address(192, 168, 127, 4))
        #expect(handle(request(MACAddress(0x02, 0, 0, 0, 0, 0x40), .discover), now: now + .seconds(61)).reply?.yourAddress
                == IPv4Address(192, 168, 127, 4))
        #expect(handle(request(third, .discover), now: now + .seconds(601)).reply?.yourAddress
                == IPv4Address(192, 168, 127, 3))
        // Bindings expire after the lease time.
        #expect(server.leases.contains { $0.address == IPv4Address(192, 168, 127, 40) })
        _ = handle(request(third, .discover), now: now + .seconds(3601))
        #expect(!server.leases.contains { $0.address == IPv4Address(192, 168, 127, 40) })
    }

    @Test func twoGuestsAreSwitchedAndCannotSpoof() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let a = network.attach()
        let b = network.attach()
        let macA = MACAddress(0x02, 0, 0, 0, 0, 0xA)
        let macB = MACAddress(0x02, 0, 0, 0, 0, 0xB)
        func arpRequest(from mac: MACAddress, ip: UInt8, for target: UInt8) -> [UInt8] {
            var out: [UInt8] = []
            EthernetHeader(destination: .broadcast, source: mac, etherType: .arp).emit(into: &out)
            ARPPacket(operation: .request, senderMAC: mac, senderIP: IPv4Address(192, 168, 127, ip), targetMAC: .zero,
                      targetIP: IPv4Address(192, 168, 127, target)).emit(into: &out)
            return out
        }
        // A broadcast from A reaches B (and not the gateway, which does not own .11).
        #expect(receive(network, arpRequest(from: macA, ip: 10, for: 11), from: a) == [.forward([b])])
        // B's unicast answer goes to A only.
        var reply: [UInt8] = []
        EthernetHeader(destination: macA, source: macB, etherType: .arp).emit(into: &reply)
        ARPPacket(operation: .reply, senderMAC: macB, senderIP: IPv4Address(192, 168, 127, 11), targetMAC: macA,
                  targetIP: IPv4Address(192, 168, 127, 10)).emit(into: &reply)
        #expect(receive(network, reply, from: b) == [.forward([a])])
        // A frame from A claiming B's MAC is dropped.
        #expect(receive(network, arpRequest(from: macB, ip: 10, for: 11), from: a).isEmpty)
        #expect(network.counters.drops[.spoofedSource] == 1)
        // Once B's port is gone, its MAC may appear elsewhere.
        network.detach(b, now: now)
        #expect(receive(network, arpRequest(from: macB, ip: 11, for: 1), from: a).count == 1)
        #expect(network.counters.ports[a.rawValue]?.framesIn == 3)
    }

    /// One guest's broadcast storm is cut at its allowance; the others still hear a trickle.
    @Test func broadcastStormsAreLimitedPerPort() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let noisy = network.attach()
        let quiet = network.attach()
        var frame: [UInt8] = []
        EthernetHeader(destination: .broadcast, source: MACAddress(2, 0, 0, 0, 0, 1), etherType: .ipv6).emit(into: &frame)
        frame += [UInt8](repeating: 0, count: 46)
        func flood(_ count: Int, at time: ContinuousClock.Instant) -> Int {
            (0..<count).filter { _ in !frame.withUnsafeBytes { network.receive($0, from: noisy, now: time) }.isEmpty }.count
        }
        #expect(flood(300, at: now) == 200, "the burst")
        #expect(network.counters.drops[.broadcastStorm] == 100)
        #expect(flood(300, at: now + .milliseconds(100)) == 100, "refilled at 1000 per second")
        #expect(network.counters.ports[quiet.rawValue]?.framesOut == 300)
    }

    @Test func badFramesAreDroppedUnderTheirReason() throws {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let (pings, _) = try Self.recorded("icmp and host 192.168.127.1")
        var badChecksum = pings[0]
        badChecksum[22] ^= 0xFF
        var options = Array(pings[0][..<14]) + [0x46] + Array(pings[0][15..<34]) + [1, 1, 1, 0] + Array(pings[0][34...])
        options[16...17] = [0, UInt8(options.count - 14)]
        options[24...25] = [0, 0]
        let checksum = options[14..<38].withUnsafeBytes { InternetChecksum.of($0) }
        options[24...25] = [UInt8(checksum >> 8), UInt8(checksum & 0xFF)]
        var fragment = pings[0]
        fragment[20] = 0x20
        fragment[24...25] = [0, 0]
        let fragmentChecksum = fragment[14..<34].withUnsafeBytes { InternetChecksum.of($0) }
        fragment[24...25] = [UInt8(fragmentChecksum >> 8), UInt8(fragmentChecksum & 0xFF)]
        var unknownUnicast = pings[0]
        unknownUnicast[0...5] = [0x02, 0, 0, 0, 0, 0x99]
        var multicastSource = pings[0]
        multicastSource[6] = 0x01
        var elsewhere = pings[0]
        elsewhere[30...33] = [198, 51, 100, 7]
        let cases: [([UInt8], DropReason)] = [
            (Array(pings[0][..<10]), .malformedFrame), (badChecksum, .badChecksum), (options, .ipOptions),
            (fragment, .fragment), (unknownUnicast, .unknownUnicast), (multicastSource, .multicastSource),
            (Array(pings[0][..<14]) + [0x45, 0, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16), .malformedIPv4),
        ]
        for (frame, reason) in cases {
            #expect(receive(network, frame, from: port).isEmpty, "\(reason)")
            #expect(network.counters.drops[reason] == 1, "\(reason)")
        }
        #expect(receive(network, elsewhere, from: port).isEmpty)
    }
}
