// One line describing an Ethernet frame, in the spirit of `tcpdump -n`:
// link addresses for non-IP frames, network addresses and ports for IP, then
// what each protocol's header says (ARP operation, ICMP type, TCP flags with
// absolute sequence numbers, DHCP message type, DNS question and answers).
// A frame that does not parse is described with the parser's error.
import SovnetWire

/// What kind of frame a summary line describes, for the totals.
public enum FrameKind: String, CaseIterable, Sendable {
    case arp = "ARP", tcp = "TCP", udp = "UDP", icmp = "ICMP", otherIPv4 = "other IPv4"
    case ipv6 = "IPv6", other = "other", malformed = "malformed"
}

/// Describes frames one line at a time.
public enum FrameSummary {
    /// The description of `frame` (without a timestamp) and its kind.
    public static func describe(_ frame: [UInt8]) -> (text: String, kind: FrameKind) {
        frame.withUnsafeBytes { raw in
            do {
                return try describe(raw)
            } catch {
                return ("malformed: \(error)", .malformed)
            }
        }
    }

    static func describe(_ raw: UnsafeRawBufferPointer) throws -> (text: String, kind: FrameKind) {
        let ethernet = try EthernetView(raw)
        let link = "\(ethernet.source) > \(ethernet.destination)"
        switch ethernet.etherType {
        case .arp:
            let arp = try ARPPacket.parse(ethernet.payload)
            let what = switch arp.operation {
            case .request: "request who-has \(arp.targetIP) tell \(arp.senderIP)"
            case .reply: "reply \(arp.senderIP) is-at \(arp.senderMAC)"
            default: "operation \(arp.operation.rawValue)"
            }
            return ("\(link) ARP \(what), length \(ethernet.payload.count)", .arp)
        case .ipv4:
            return try describeIPv4(try IPv4View(ethernet.payload))
        case .ipv6:
            return ("\(link) IPv6, length \(ethernet.payload.count)", .ipv6)
        default:
            return ("\(link) ethertype \(ethernet.etherType), length \(ethernet.payload.count)", .other)
        }
    }

    static func describeIPv4(_ ip: IPv4View) throws -> (text: String, kind: FrameKind) {
        if ip.fragmentOffset != 0 {
            return ("IP \(ip.source) > \(ip.destination): \(ip.protocol) fragment id \(ip.identification) "
                    + "offset \(ip.fragmentOffset)\(ip.moreFragments ? "+" : ""), length \(ip.payload.count)",
                    kind(of: ip.protocol))
        }
        let fragment = ip.moreFragments ? " (first fragment of id \(ip.identification))" : ""
        switch ip.protocol {
        case .tcp:
            let tcp = try TCPView(ip.payload)
            var text = "IP \(ip.source).\(tcp.sourcePort) > \(ip.destination).\(tcp.destinationPort): "
                + "TCP [\(tcp.flags)] seq \(tcp.sequenceNumber)"
            if tcp.flags.contains(.ack) { text += ", ack \(tcp.acknowledgmentNumber)" }
            text += ", win \(tcp.window)"
            let options = try tcp.options()
            if let mss = options.maximumSegmentSize { text += ", mss \(mss)" }
            if let scale = options.windowScale { text += ", wscale \(scale)" }
            if options.sackPermitted { text += ", sackOK" }
            text += ", length \(tcp.payload.count)"
            if let dns = dnsOverTCP(tcp) { text += ": " + describe(dns) }
            return (text + fragment, .tcp)
        case .udp:
            let udp = try UDPView(ip.payload)
            let text = "IP \(ip.source).\(udp.sourcePort) > \(ip.destination).\(udp.destinationPort): "
                + describeUDPPayload(udp)
            return (text + fragment, .udp)
        case .icmp:
            let icmp = try ICMPv4View(ip.payload, verifyChecksum: !ip.moreFragments)
            return ("IP \(ip.source) > \(ip.destination): ICMP \(describe(icmp)), length \(icmp.body.count + 8)"
                    + fragment, .icmp)
        default:
            return ("IP \(ip.source) > \(ip.destination): \(ip.protocol), length \(ip.payload.count)" + fragment,
                    .otherIPv4)
        }
    }

    static func describeUDPPayload(_ udp: UDPView) -> String {
        let ports = [udp.sourcePort, udp.destinationPort]
        let length = ", length \(udp.payload.count)"
        if ports.contains(67) || ports.contains(68) {
            guard let message = try? DHCPMessage.parse(udp.payload) else { return "DHCP (malformed)" + length }
            var text = "DHCP \(message.messageType.map(String.init(describing:)) ?? "BOOTP")"
            text += " xid 0x" + String(message.transactionID, radix: 16)
            if let mac = message.clientMAC, message.operation == .request { text += " from \(mac)" }
            if message.yourAddress != .any { text += " yiaddr \(message.yourAddress)" }
            if let requested = message.options.requestedIPAddress { text += " requested \(requested)" }
            return text + length
        }
        if ports.contains(53) || ports.contains(5353) {
            guard let message = try? DNSMessage.parse(udp.payload) else { return "DNS (malformed)" + length }
            return describe(message) + length
        }
        return "UDP" + length
    }

    /// A segment to or from port 53 that holds exactly one length-prefixed
    /// DNS message (RFC 7766 §8), as short queries and answers do.
    static func dnsOverTCP(_ tcp: TCPView) -> DNSMessage? {
        let payload = tcp.payload
        guard tcp.sourcePort == 53 || tcp.destinationPort == 53, payload.count > 2,
              Int(payload[0]) << 8 | Int(payload[1]) == payload.count - 2 else { return nil }
        return try? DNSMessage.parse(UnsafeRawBufferPointer(rebasing: payload[2...]))
    }

    /// `query 42093 A? gateway.example.test.` or
    /// `response 42093 NOERROR A? gateway.example.test. [A 192.168.127.1]`.
    static func describe(_ message: DNSMessage) -> String {
        let question = message.questions.first.map { " \($0.type)? \($0.name)" } ?? ""
        guard message.flags.isResponse else { return "DNS query \(message.id)\(question)" }
        let answers = message.answers.map { record -> String in
            switch record.data {
            case .a(let address): "A \(address)"
            case .aaaa(let address): "AAAA \(address)"
            case .cname(let name): "CNAME \(name)"
            case .ns(let name): "NS \(name)"
            case .ptr(let name): "PTR \(name)"
            case .mx(let preference, let exchange): "MX \(preference) \(exchange)"
            case .txt(let strings): "TXT " + strings.map { "\"\(String(decoding: $0, as: UTF8.self))\"" }.joined(separator: " ")
            case .srv(let priority, let weight, let port, let target): "SRV \(priority) \(weight) \(port) \(target)"
            case .soa(let soa): "SOA \(soa.primaryServer)"
            case .raw(let bytes): "\(record.type) (\(bytes.count) bytes)"
            }
        }
        return "DNS response \(message.id) \(message.flags.responseCode)\(question) [\(answers.joined(separator: ", "))]"
    }

    static func describe(_ icmp: ICMPv4View) -> String {
        switch icmp.type {
        case .echoRequest: "echo request, id \(icmp.identifier), seq \(icmp.sequence)"
        case .echoReply: "echo reply, id \(icmp.identifier), seq \(icmp.sequence)"
        case .destinationUnreachable: "unreachable code \(icmp.code)"
        case .timeExceeded: "time exceeded code \(icmp.code)"
        default: "type \(icmp.type.rawValue) code \(icmp.code)"
        }
    }

    static func kind(of protocol: IPProtocol) -> FrameKind {
        switch `protocol` {
        case .tcp: .tcp
        case .udp: .udp
        case .icmp: .icmp
        default: .otherIPv4
        }
    }
}
