import Testing
@testable import SovnetWire

/// Field values read from real captures, checked against what tcpdump and
/// tshark print for the same frames.
@Suite struct CaptureFieldTests {
    func dhcp(_ file: String) throws -> [DHCPMessage] {
        try CaptureVectors.frames(file, filter: "udp port 67").map { frame in
            try frame.withUnsafeBytes { raw in
                let ip = try IPv4View(try EthernetView(raw).payload)
                return try DHCPMessage.parse(try UDPView(ip.payload, source: ip.source, destination: ip.destination).payload)
            }
        }
    }

    @Test func udhcpcExchangeWithDnsmasq() throws {
        let messages = try dhcp("dhcp-udhcpc.pcap")
        #expect(messages.map(\.messageType) == [.discover, .offer, .request, .ack])
        #expect(Set(messages.map(\.transactionID)).count == 1)
        let mac = MACAddress("5a:94:ef:e4:0c:ee")
        #expect(messages.allSatisfy { $0.clientMAC == mac })

        let discover = messages[0]
        #expect(discover.operation == .request)
        #expect(discover.options.hostName == "sovnet-guest")
        #expect(discover.options.clientIdentifier == [1] + mac!.octets)
        #expect(discover.options.parameterRequestList.map(\.rawValue) == [1, 3, 6, 12, 15, 26, 28, 42, 119, 121])

        let offer = messages[1]
        let gateway = IPv4Address(192, 168, 127, 1)
        #expect(offer.operation == .reply)
        #expect(offer.yourAddress == IPv4Address("192.168.127.25"))
        #expect(offer.options.serverIdentifier == gateway)
        #expect(offer.options.leaseTime == 3600)
        #expect(offer.options.renewalTime == 1800)
        #expect(offer.options.rebindingTime == 3150)
        #expect(offer.options.subnetMask == IPv4Address(255, 255, 255, 0))
        #expect(offer.options.routers == [gateway])
        #expect(offer.options.domainNameServers == [gateway])
        #expect(offer.options.interfaceMTU == 1500)
        #expect(offer.options.domainName == "example.test")
        #expect(offer.options.domainSearch == ["example.test", "vm.example.test"])
        #expect(offer.options.classlessStaticRoutes
                    == [DHCPRoute(destination: IPv4Address(10, 0, 0, 0), prefixLength: 8, router: gateway)])

        let request = messages[2]
        #expect(request.options.requestedIPAddress == offer.yourAddress)
        #expect(request.options.serverIdentifier == gateway)
    }

    @Test func dhclientExchange() throws {
        let messages = try dhcp("dhcp-dhclient.pcap")
        #expect(Array(messages.map(\.messageType).prefix(4)) == [.discover, .offer, .request, .ack])
        #expect(messages[3].yourAddress == IPv4Address("192.168.127.25"))
    }

    @Test func gvproxyDHCPServer() throws {
        let messages = try dhcp("gvproxy-v0.6.2-guest-tap.pcap")
        let ack = try #require(messages.first { $0.messageType == .ack })
        #expect(ack.yourAddress == IPv4Address("192.168.127.2"))
        #expect(ack.options.leaseTime == 3600)
        #expect(ack.options.routers == [IPv4Address(192, 168, 127, 1)])
        #expect(ack.options.interfaceMTU == 1500)
    }

    @Test func arpRequestAndReply() throws {
        let frames = try CaptureVectors.frames("arp-icmp.pcap", filter: "arp")
        let packets = try frames.map { frame in
            try frame.withUnsafeBytes { try ARPPacket.parse(try EthernetView($0).payload) }
        }
        #expect(packets[0].operation == .request)
        #expect(packets[0].senderIP == IPv4Address(192, 168, 127, 2))
        #expect(packets[0].targetIP == IPv4Address(192, 168, 127, 1))
        #expect(packets[1].operation == .reply)
        #expect(packets[1].senderMAC == MACAddress("5a:94:ef:e4:0c:dd"))
        let header = try EthernetHeader.parse(frames[0])
        #expect(header.destination == .broadcast)
        #expect(header.etherType == .arp)
    }

    @Test func echoAndFragments() throws {
        let frames = try CaptureVectors.frames("arp-icmp.pcap", filter: "icmp or (ip[6:2] & 0x1fff != 0)")
        try frames[0].withUnsafeBytes { raw in
            let ip = try IPv4View(try EthernetView(raw).payload)
            let icmp = try ICMPv4View(ip.payload)
            #expect(icmp.type == .echoRequest)
            #expect(icmp.sequence == 1)
            #expect(icmp.body.count == 56)
            #expect(!ip.isFragment)
        }
        let fragments = try frames.map { frame in
            try frame.withUnsafeBytes { raw in IPv4Header(try IPv4View(try EthernetView(raw).payload)) }
        }.filter { $0.moreFragments || $0.fragmentOffset != 0 }
        #expect(fragments.count == 4)
        #expect(fragments[0].moreFragments && fragments[0].fragmentOffset == 0)
        #expect(!fragments[1].moreFragments && fragments[1].fragmentOffset == 1480)
        #expect(fragments[0].payloadLength + fragments[1].payloadLength == 2008)
    }

    @Test func tcpHandshakeOptions() throws {
        let frames = try CaptureVectors.frames("tcp-http.pcap")
        let syn = try frames[0].withUnsafeBytes { raw in
            let ip = try IPv4View(try EthernetView(raw).payload)
            return try TCPHeader(try TCPView(ip.payload, source: ip.source, destination: ip.destination))
        }
        #expect(syn.flags == .syn)
        #expect(syn.destinationPort == 8080)
        #expect(syn.options.maximumSegmentSize == 1460)
        #expect(syn.options.sackPermitted)
        #expect(syn.options.windowScale == 10)
        #expect(syn.options.timestamps?.echoReply == 0)
        #expect(syn.flags.description == "S")
    }

    @Test func dnsAnswersFromDnsmasq() throws {
        let responses = try CaptureVectors.frames("dns.pcap", filter: "udp src port 53").map { frame in
            try frame.withUnsafeBytes { raw in
                let ip = try IPv4View(try EthernetView(raw).payload)
                return try DNSMessage.parse(try UDPView(ip.payload).payload)
            }
        }
        let data = responses.map { $0.answers.map(\.data) }
        #expect(data[0] == [.a(IPv4Address(192, 168, 127, 1))])
        #expect(data[1].map { "\($0)" } == ["aaaa(fd00::10)"])
        #expect(data[2] == [.cname("gateway.example.test"), .a(IPv4Address(192, 168, 127, 1))])
        #expect(data[3] == [.txt([Array("v=spf1 -all".utf8), Array("second string".utf8)])])
        #expect(data[4] == [.mx(preference: 10, exchange: "mail.example.test")])
        #expect(data[5] == [.srv(priority: 0, weight: 5, port: 8080, target: "gateway.example.test")])
        #expect(responses[6].flags.responseCode == .nameError)
        #expect(responses[0].questions == [DNSQuestion(name: "gateway.example.test", type: .a)])
        #expect(responses[0].flags.isResponse && responses[0].flags.authoritative)
        #expect(responses[0].ednsRecord?.class.rawValue == 1232)
    }
}
