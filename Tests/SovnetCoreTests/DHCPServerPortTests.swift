import SovnetWire
import Testing
@testable import SovnetCore

/// The DHCP server on a switch shared with hostile guests: bindings belong
/// to the port they were made on, each port holds a bounded number, and a
/// guest that comes back on a new port takes its own back.
@Suite struct DHCPServerPortTests {
    let now = ContinuousClock.now
    let guest = MACAddress(0x02, 0, 0, 0, 0, 0x10)
    let attacker = MACAddress(0x02, 0, 0, 0, 0, 0x66)
    let home = PortID(1)
    let hostile = PortID(2)

    func message(_ mac: MACAddress, _ type: DHCPMessageType, requested: IPv4Address? = nil,
                 client: IPv4Address = .any, xid: UInt32 = 7) -> DHCPMessage {
        var message = DHCPMessage(operation: .request, transactionID: xid, clientMAC: mac)
        message.options.messageType = type
        message.options.requestedIPAddress = requested
        message.clientAddress = client
        return message
    }

    func server(leasesPerPort: Int = 16) -> DHCPServer {
        var configuration = VirtualNetworkConfiguration()
        configuration.maximumLeasesPerPort = leasesPerPort
        return DHCPServer(configuration: configuration.dhcp)
    }

    @Test func releaseAndDeclineCountOnlyFromTheHoldingPort() {
        var server = server()
        let address = IPv4Address(192, 168, 127, 3)
        #expect(server.handle(message(guest, .request, requested: address), from: home, now: now).reply?.messageType == .ack)
        // The guest's MAC as chaddr, from another port: ignored.
        #expect(server.handle(message(guest, .release, client: address), from: hostile, now: now).event
                == .ignored(reason: "release of \(address) not bound to \(guest) on \(hostile)"))
        #expect(server.handle(message(guest, .decline, requested: address), from: hostile, now: now).reply == nil)
        #expect(server.lease(at: address, now: now)?.port == home)
        #expect(server.declined.isEmpty)
        // A DECLINE of an address never offered to the client (off the subnet, say) is ignored and kept nowhere.
        _ = server.handle(message(attacker, .decline, requested: IPv4Address(10, 9, 8, 7)), from: hostile, now: now)
        #expect(server.declined.isEmpty)
        // From its own port the guest releases it.
        #expect(server.handle(message(guest, .release, client: address), from: home, now: now).event == .released(address))
    }

    @Test func onePortHoldsAtMostItsLimitAndOthersStillLease() {
        var server = server(leasesPerPort: 4)
        for index in 0..<251 {
            let mac = MACAddress(0x02, 0, 0, 1, UInt8(index >> 8), UInt8(index & 0xFF))
            _ = server.handle(message(mac, .request, requested: IPv4Address(192, 168, 127, UInt8(3 + index))),
                              from: hostile, now: now)
            _ = server.handle(message(mac, .discover), from: hostile, now: now)
        }
        #expect(server.leaseCount(on: hostile) == 4)
        let offer = server.handle(message(guest, .discover), from: home, now: now).reply
        #expect(offer?.messageType == .offer && offer?.yourAddress != IPv4Address.any)
    }

    @Test func aClientIdentifierOrAddressOnALivePortIsNotGivenAway() {
        var server = server()
        let address = IPv4Address(192, 168, 127, 3)
        var request = message(guest, .request, requested: address)
        request.options.clientIdentifier = [1, 2, 3]
        #expect(server.handle(request, from: home, now: now).reply?.messageType == .ack)
        // Another MAC with the same client identifier, on another port.
        var stolen = message(attacker, .request, requested: address)
        stolen.options.clientIdentifier = [1, 2, 3]
        #expect(server.handle(stolen, from: hostile, now: now).reply?.messageType == .nak)
        // Using the address without asking is refused too.
        #expect(server.claim(address, mac: attacker, port: hostile, now: now) == .refused)
        #expect(server.claim(address, mac: guest, port: hostile, now: now) == .refused, "the guest's own port is alive")
    }

    @Test func aGuestBackOnANewPortTakesItsBindingBack() {
        var server = server()
        let address = IPv4Address(192, 168, 127, 3)
        _ = server.handle(message(guest, .request, requested: address), from: home, now: now)
        server.detach(home, now: now)
        // Another MAC cannot have it; the same MAC on a new port takes it back, and the move is reported.
        #expect(server.claim(address, mac: attacker, port: hostile, now: now) == .refused)
        server.takeBack(mac: guest, to: PortID(3))
        #expect(server.lease(at: address, now: now)?.port == PortID(3))
        #expect(server.takeMoves().map { [$0.from, $0.lease.port] } == [[home, PortID(3)]])
        #expect(server.claim(address, mac: guest, port: PortID(3), now: now) == .held)
    }

    @Test func bindingsThatComeBackStayWithinTheNewPortsLimit() {
        var server = server(leasesPerPort: 2)
        #expect(server.claim(IPv4Address(192, 168, 127, 3), mac: guest, port: home, now: now) == .taken)
        #expect(server.claim(IPv4Address(192, 168, 127, 4), mac: guest, port: home, now: now) == .taken)
        server.detach(home, now: now)
        let newcomer = PortID(3)
        #expect(server.claim(IPv4Address(192, 168, 127, 5), mac: attacker, port: newcomer, now: now) == .taken)
        server.takeBack(mac: guest, to: newcomer)
        #expect(server.leaseCount(on: newcomer) == 2 && server.takeMoves().count == 1)
        var discover = message(guest, .discover)
        discover.options.requestedIPAddress = IPv4Address(192, 168, 127, 3)
        _ = server.handle(discover, from: newcomer, now: now)
        #expect(server.leaseCount(on: newcomer) == 2)
    }

    @Test func aDryPoolReclaimsTheBindingsOfDepartedPorts() {
        var configuration = VirtualNetworkConfiguration(prefixLength: 29, staticBindings: [:])
        configuration.maximumLeasesPerPort = 16
        var server = DHCPServer(configuration: configuration.dhcp)
        // A /29: .1 is the gateway, .2 to .6 the pool.
        for index in 0..<5 {
            let mac = MACAddress(0x02, 0, 0, 2, 0, UInt8(index))
            #expect(server.handle(message(mac, .discover), from: hostile, now: now).reply?.messageType == .offer)
        }
        #expect(server.handle(message(guest, .discover), from: home, now: now).reply == nil, "the pool is dry")
        server.detach(hostile, now: now)
        #expect(server.handle(message(guest, .discover), from: home, now: now).reply?.messageType == .offer)
    }

    @Test func addressesTakenByUseAreBoundedPerPort() {
        var server = server(leasesPerPort: 3)
        let granted = (3...10).map { server.claim(IPv4Address(192, 168, 127, UInt8($0)), mac: attacker, port: hostile, now: now) }
        #expect(granted == [.taken, .taken, .taken, .refused, .refused, .refused, .refused, .refused])
        #expect(server.claim(IPv4Address(192, 168, 127, 3), mac: attacker, port: hostile, now: now) == .held)
        // The static address is its MAC's only.
        #expect(server.claim(IPv4Address(192, 168, 127, 2), mac: attacker, port: hostile, now: now) == .refused)
    }
}
