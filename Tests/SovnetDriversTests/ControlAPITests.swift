import Foundation
import SovnetCore
import SovnetWire
import Testing
@testable import SovnetDrivers
import SovnetGuestCore

/// The control API's routes and JSON shapes, on a network that sovnet's own
/// DHCP client has taken a lease from.
@Suite struct ControlAPITests {
    func network() -> VirtualNetwork {
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        var client = DHCPClient(configuration: DHCPClientConfiguration(mac: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)), seed: 1)
        var pending = client.start(now: .now)
        while !pending.isEmpty {
            guard case .send(let frame) = pending.removeFirst() else { continue }
            for case .send(let reply, _) in frame.withUnsafeBytes({ network.receive($0, from: port, now: .now) }) {
                pending += reply.withUnsafeBytes { client.receive($0, now: .now) } ?? []
            }
        }
        return network
    }

    func call(_ network: VirtualNetwork, _ method: String, _ path: String, _ body: String = "") -> (Int, String) {
        let response = ControlAPI.respond(method: method, path: path, body: Array(body.utf8), network: network)
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func gvproxyShapes() {
        let network = network()
        #expect(call(network, "GET", "/services/dhcp/leases") == (200, #"{"192.168.127.2":"5a:94:ef:e4:0c:ee"}"#))
        #expect(call(network, "GET", "/leases").1 == call(network, "GET", "/services/dhcp/leases").1)
        #expect(call(network, "GET", "/cam") == (200, #"{"5a:94:ef:e4:0c:ee":1}"#))
        let zones = call(network, "GET", "/services/dns/all")
        #expect(zones.0 == 200)
        #expect(zones.1.hasPrefix(#"[{"Name":"containers.internal.","Records":[{"IP":"192.168.127.1","Name":"gateway"}"#))
        let stats = call(network, "GET", "/stats")
        #expect(stats.0 == 200 && stats.1.contains(#""dhcp":{"acks":1,"offers":1}"#))
    }

    @Test func addingAZoneReachesTheResolver() {
        let network = network()
        let body = #"{"Name":"test.internal.","Records":[{"Name":"db","IP":"192.168.127.60"}],"DefaultIP":"192.168.127.61"}"#
        #expect(call(network, "POST", "/services/dns/add", body).0 == 200)
        #expect(network.dns.records["db.test.internal"] == [.v4(IPv4Address(192, 168, 127, 60))])
        #expect(call(network, "GET", "/services/dns/all").1.contains(#"{"DefaultIP":"192.168.127.61","Name":"test.internal.","Records":[{"IP":"192.168.127.60","Name":"db"}]}"#))
    }

    @Test(arguments: [
        ("POST", "/services/dns/add", "{not json", 400),
        ("POST", "/services/dns/add", #"{"Name":"x.","Records":[{"Name":"a","IP":"300.1.1.1"}]}"#, 400),
        ("POST", "/services/dns/add", #"{"Name":"","Records":[]}"#, 400),
        ("POST", "/services/dns/add", #"{"Name":"x.","DefaultIP":"nope"}"#, 400),
        ("DELETE", "/stats", "", 405),
        ("GET", "/services/dns/add", "", 405),
        ("GET", "/nothing", "", 404),
    ])
    func badRequestsGetAClearStatus(method: String, path: String, body: String, status: Int) {
        let (code, message) = call(network(), method, path, body)
        #expect(code == status)
        #expect(!message.isEmpty)
    }
}
