import Logging
import SovnetCore
import SovnetWire
import Testing
@testable import SovnetDrivers

/// gvproxy's configuration file, in the nested layout of current gvproxy
/// (every key) and the older flat one, and the errors that name key and line.
@Suite struct GvproxyConfigurationTests {
    /// Every key current gvproxy reads.
    static let nested = """
        log-level: debug
        listen:
          - unix:///tmp/sovnet-test-network.sock
        interfaces:
          qemu: unix:///tmp/sovnet-test-qemu.sock
          bess: unixpacket:///tmp/sovnet-test-bess.sock
          vfkit: unixgram:///tmp/sovnet-test-vfkit.sock
          stdio: accept
        forwards:
          - socket: /tmp/podman.sock
            dest: /run/podman/podman.sock
            user: core
            identity: /tmp/key
        pid-file: /tmp/sovnet-test.pid
        log-file: /tmp/sovnet-test.log
        services: unix:///tmp/sovnet-test-services.sock
        ec2-metadata-access: true
        notification: unix:///tmp/sovnet-test-notify.sock
        stack:
          debug: false
          capture-file: /tmp/switch.pcap
          mtu: 4000
          subnet: 10.10.0.0/16
          gatewayIP: 10.10.0.1
          deviceIP: 10.10.0.2
          hostIP: 10.10.255.254
          gatewayMacAddress: "02:00:00:00:00:01"
          dns:
            - name: example.internal.
              records:
                - name: db
                  ip: 10.10.0.50
                - regexp: '^web-[0-9]+$'
                  ip: 10.10.0.60
              defaultIP: 10.10.0.254
          dnsSearchDomains:
            - example.internal
          forwards:
            127.0.0.1:2222: 10.10.0.2:22
            "udp:127.0.0.1:5353": 10.10.0.2:53
          nat:
            10.10.255.254: 127.0.0.1
          gatewayVirtualIPs:
            - 10.10.255.254
          dhcpStaticLeases:
            10.10.0.2: "5a:94:ef:e4:0c:ee"
          vpnKitUUIDMacAddresses:
            c3d68012-0208-11ea-9fd7-f2189899ab08: "5a:94:ef:e4:0c:ee"
          ec2MetadataAccess: false
        """

    @Test func everyKeyOfTheNestedLayout() throws {
        let file = try GvproxyConfiguration.parse(Self.nested)
        #expect(file.layout == .nested)
        #expect(file.logLevel == .debug)
        #expect(file.listen == ["unix:///tmp/sovnet-test-network.sock"])
        #expect(file.interfaces.qemu == "unix:///tmp/sovnet-test-qemu.sock" && file.interfaces.stdio == "accept")
        #expect(file.interfaces.bess == "unixpacket:///tmp/sovnet-test-bess.sock")
        #expect(file.interfaces.vfkit == "unixgram:///tmp/sovnet-test-vfkit.sock")
        #expect(file.sshForwards == [.init(socket: "/tmp/podman.sock", dest: "/run/podman/podman.sock", user: "core", identity: "/tmp/key")])
        #expect(file.pidFile == "/tmp/sovnet-test.pid" && file.logFile == "/tmp/sovnet-test.log")
        #expect(file.services == "unix:///tmp/sovnet-test-services.sock")
        #expect(file.notification == "unix:///tmp/sovnet-test-notify.sock")
        #expect(file.debug == false && file.captureFile == "/tmp/switch.pcap")
        #expect(file.ec2MetadataAccess == false, "the stack's key is read after the top level's")

        var network = VirtualNetworkConfiguration()
        file.apply(to: &network)
        #expect(network.mtu == 4000 && network.prefixLength == 16)
        #expect(network.gatewayAddress == IPv4Address(10, 10, 0, 1))
        #expect(network.hostAddress == IPv4Address(10, 10, 255, 254))
        #expect(network.gatewayMAC == MACAddress(2, 0, 0, 0, 0, 1))
        #expect(network.virtualAddresses == [IPv4Address(10, 10, 255, 254)])
        #expect(network.staticBindings == [MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE): IPv4Address(10, 10, 0, 2)])
        #expect(network.searchDomains == ["example.internal"])

        var nat = NATConfiguration()
        file.apply(to: &nat)
        #expect(Set(nat.forwards.map(\.description)) == ["tcp:127.0.0.1:2222=10.10.0.2:22", "udp:127.0.0.1:5353=10.10.0.2:53"])
        #expect(nat.policy.translations[.v4(IPv4Address(10, 10, 255, 254))] == .v4(IPv4Address(127, 0, 0, 1)))
    }

    @Test func regexpRecordsAnswerAfterNamedOnesAndBeforeTheDefault() throws {
        let file = try GvproxyConfiguration.parse(Self.nested)
        var network = VirtualNetworkConfiguration()
        file.apply(to: &network)
        var resolver = VirtualNetwork(configuration: network).dns
        func answer(_ name: String) throws -> [IPv4Address] {
            let query = DNSMessage(id: 7, flags: DNSFlags(rawValue: 0x0100), questions: [DNSQuestion(name: DNSName(name), type: .a)])
            let decision = try query.bytes().withUnsafeBytes { resolver.decide($0) }
            guard case .answer(let reply) = decision else { return [] }
            return try reply.withUnsafeBytes { try DNSMessage.parse($0) }.answers.compactMap {
                if case .a(let address) = $0.data { address } else { nil }
            }
        }
        #expect(try answer("db.example.internal") == [IPv4Address(10, 10, 0, 50)])
        #expect(try answer("WEB-12.example.internal") == [IPv4Address(10, 10, 0, 60)])
        #expect(try answer("web-x.example.internal") == [IPv4Address(10, 10, 0, 254)], "no match: the zone's default")
        #expect(try answer("gateway.containers.internal") == [IPv4Address(10, 10, 0, 1)], "the built-in zones stay")
    }

    @Test func theFlatLayoutOfOlderGvproxy() throws {
        let file = try GvproxyConfiguration.parse("""
            debug: true
            mtu: 9000
            forwards:
              ":8080": 192.168.127.2:80
            nat:
              192.168.127.253: 10.0.0.5
            """)
        #expect(file.layout == .flat && file.debug == true && file.mtu == 9000)
        var nat = NATConfiguration()
        file.apply(to: &nat)
        #expect(nat.forwards.map(\.description) == ["tcp:0.0.0.0:8080=192.168.127.2:80"], ":PORT is every host address")
        #expect(nat.policy.translations[.v4(IPv4Address(192, 168, 127, 253))] == .v4(IPv4Address(10, 0, 0, 5)))
        #expect(nat.policy.translations[.v4(IPv4Address(192, 168, 127, 254))] == .v4(IPv4Address(127, 0, 0, 1)), "the default stays")
    }

    @Test func sovnetsIPv6Keys() throws {
        let file = try GvproxyConfiguration.parse("""
            stack:
              ipv6Prefix: fd42:1:2:3::/64
              dhcpv6Addresses: true
              nat:
                fd42:1:2:3::253: 127.0.0.1
            """)
        var network = VirtualNetworkConfiguration()
        file.apply(to: &network)
        #expect(network.ipv6Prefix.description == "fd42:1:2:3::" && network.gatewayIPv6.description == "fd42:1:2:3::1")
        #expect(network.ipv6HostAddress.description == "fd42:1:2:3::254" && network.dhcpv6Pool != nil)
        var nat = NATConfiguration()
        file.apply(to: &nat)
        #expect(nat.policy.translations[.v6(IPv6Address("fd42:1:2:3::253")!)] == .v4(IPv4Address(127, 0, 0, 1)),
                "a translation may change the family")
        #expect(throws: ConfigurationProblem.self) { try GvproxyConfiguration.parse("stack:\n  ipv6Prefix: fe80::/64\n") }
        var off = VirtualNetworkConfiguration()
        try GvproxyConfiguration.parse("stack:\n  ipv6: false\n").apply(to: &off)
        #expect(!off.ipv6)
        #expect(throws: ConfigurationProblem.self) { try GvproxyConfiguration.parse("stack:\n  ipv6Prefix: fd00::/48\n") }
    }

    @Test func aSubnetAloneMovesTheGatewayHostAndGuest() throws {
        let file = try GvproxyConfiguration.parse("stack:\n  subnet: 10.0.2.0/24\n")
        var network = VirtualNetworkConfiguration()
        file.apply(to: &network)
        #expect(network.gatewayAddress == IPv4Address(10, 0, 2, 1) && network.hostAddress == IPv4Address(10, 0, 2, 254))
        #expect(network.staticBindings.values.first == IPv4Address(10, 0, 2, 2))
    }

    @Test(arguments: [
        ("stack:\n  mtu: 1500\n  mtuu: 3\n", "line 3: unknown key 'stack.mtuu' (did you mean 'mtu'?)"),
        ("listen: [unix:///a]\nlog-levl: info\n", "line 2: unknown key 'log-levl' (did you mean 'log-level'?)"),
        ("mtu: 1500\ngatewayIp: 1.2.3.4\n", "line 2: unknown key 'gatewayIp' (did you mean 'gatewayIP'?)"),
        ("stack:\n  dns:\n    - name: x.\n      recrods: []\n", "line 4: unknown key 'stack.dns.recrods' (did you mean 'records'?)"),
        ("stack:\n  mtu: lots\n", "line 2: stack.mtu: want a whole number, not 'lots'"),
        ("mtu: 100\n", "line 1: mtu: 100 is out of range"),
        ("stack:\n  gatewayIP: 999.1.1.1\n", "line 2: stack.gatewayIP: '999.1.1.1' is not an IPv4 address"),
        ("subnet: 10.0.0.0\n", "line 1: subnet: '10.0.0.0' is not ADDRESS/PREFIX"),
        ("gatewayMacAddress: nope\n", "line 1: gatewayMacAddress: 'nope' is not a MAC address"),
        ("dhcpStaticLeases:\n  10.0.0.2: zz\n", "line 2: dhcpStaticLeases: 'zz' is not a MAC address"),
        ("forwards: {\"127.0.0.1:2222\": \"192.168.127.2\"}\n", "line 1: forwards: bad remote"),
        ("forwards:\n  \"localhost:2222\": \"192.168.127.2:22\"\n", "line 2: forwards: bad local address"),
        ("nat:\n  192.168.127.254: loopback\n", "line 2: nat:"),
        ("dns:\n  - name: x.\n    records:\n      - {name: a}\n", "line 4: dns.records: a record needs an ip"),
        ("dns:\n  - name: x.\n    records:\n      - {regexp: '(', ip: 1.2.3.4}\n", "line 4: dns.records.regexp: '(' is not a regular expression"),
        ("log-level: loud\n", "line 1: log-level: 'loud' is not one of"),
        ("ec2-metadata-access: maybe\n", "line 1: ec2-metadata-access: want true or false"),
        ("forwards:\n  - socket: /a\n    dest: /b\n", "line 2: forwards: an SSH forward needs 'user'"),
        ("stack:\n  mtu: [\n", "YAML syntax error at line 3, column 1"),
        ("mtu: 1500\n  bad: indent\n", "YAML syntax error at line 2, column"),
        ("- just\n- a list\n", "line 1: the file must be a mapping"),
    ])
    func problemsNameTheKeyAndLine(yaml: String, expected: String) {
        #expect {
            _ = try GvproxyConfiguration.parse(yaml)
        } throws: { error in
            "\(error)".hasPrefix(expected) || "\(error)".contains(expected)
        }
    }

    @Test func anEmptyFileIsTheDefaults() throws {
        let file = try GvproxyConfiguration.parse("")
        var network = VirtualNetworkConfiguration()
        file.apply(to: &network)
        #expect(network.gatewayAddress == VirtualNetworkConfiguration().gatewayAddress)
    }
}
