import SovnetCore
import SovnetWire
import Testing
@testable import SovnetDrivers

@Suite struct GvproxyConfigurationTests {
    static let sample = """
        debug: true
        capture-file: /tmp/switch.pcap
        mtu: 4000
        subnet: 10.10.0.0/16
        gatewayIP: 10.10.0.1
        gatewayMacAddress: "02:00:00:00:00:01"
        dns:
          - name: example.internal.
            records:
              - name: db
                ip: 10.10.0.50
            defaultIP: 10.10.0.254
        dnsSearchDomains:
          - example.internal
        gatewayVirtualIPs:
          - 10.10.0.254
        dhcpStaticLeases:
          10.10.0.2: "5a:94:ef:e4:0c:ee"
        """

    @Test func gvproxysKeysConfigureTheNetwork() throws {
        let file = try GvproxyConfiguration.parse(Self.sample)
        #expect(file.debug == true && file.captureFile == "/tmp/switch.pcap")
        var network = VirtualNetworkConfiguration()
        try file.apply(to: &network)
        #expect(network.mtu == 4000 && network.prefixLength == 16)
        #expect(network.gatewayAddress == IPv4Address(10, 10, 0, 1))
        #expect(network.gatewayMAC == MACAddress(2, 0, 0, 0, 0, 1))
        #expect(network.virtualAddresses == [IPv4Address(10, 10, 0, 254)])
        #expect(network.staticBindings == [MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE): IPv4Address(10, 10, 0, 2)])
        #expect(network.searchDomains == ["example.internal"])
        #expect(network.dnsZones == [DNSZoneConfiguration(name: "example.internal.", records: ["db": IPv4Address(10, 10, 0, 50)],
                                                          defaultAddress: IPv4Address(10, 10, 0, 254))])
        // The zone reaches the resolver: its record, its default, and the built-in zones still there.
        let resolver = VirtualNetwork(configuration: network).dns
        #expect(resolver.records["db.example.internal"] == [IPv4Address(10, 10, 0, 50)])
        #expect(resolver.zoneDefaults["example.internal"] == IPv4Address(10, 10, 0, 254))
        #expect(resolver.zones.contains("containers.internal"))
    }

    @Test func forwardsAndNATConfigureTheNAT() throws {
        let file = try GvproxyConfiguration.parse("""
            forwards:
              ":8080": 192.168.127.2:80
              127.0.0.1:2222: 192.168.127.2:22
            nat:
              192.168.127.253: 10.0.0.5
            """)
        var nat = NATConfiguration()
        try file.apply(to: &nat)
        #expect(Set(nat.forwards.map(\.description)) == ["tcp:127.0.0.1:8080=192.168.127.2:80", "tcp:127.0.0.1:2222=192.168.127.2:22"])
        #expect(nat.policy.translations[IPv4Address(192, 168, 127, 253)] == IPv4Address(10, 0, 0, 5))
        #expect(nat.policy.translations[IPv4Address(192, 168, 127, 254)] == IPv4Address(127, 0, 0, 1), "the default stays")
    }

    @Test(arguments: [
        ("mtu: lots", "mtu"),
        ("gatewayIP: 999.1.1.1", "gatewayIP"),
        ("subnet: 10.0.0.0", "subnet"),
        ("gatewayMacAddress: nope", "gatewayMacAddress"),
        ("dhcpStaticLeases: {10.0.0.2: zz}", "dhcpStaticLeases"),
        ("forwards: {\"127.0.0.1:2222\": \"192.168.127.2\"}", "forwards: bad remote"),
        ("forwards: {\"localhost:2222\": \"192.168.127.2:22\"}", "forwards: bad local address"),
        ("nat: {192.168.127.254: loopback}", "nat"),
        ("dns: [{name: x., records: [{name: a, regexp: '.*'}]}]", "regexp"),
        ("dns: [{name: x., records: [{name: a}]}]", "needs name and ip"),
        ("mtu: [", "configuration"),
    ])
    func problemsNameTheKey(yaml: String, expected: String) {
        #expect {
            var network = VirtualNetworkConfiguration()
            var nat = NATConfiguration()
            let file = try GvproxyConfiguration.parse(yaml)
            try file.apply(to: &network)
            try file.apply(to: &nat)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}
