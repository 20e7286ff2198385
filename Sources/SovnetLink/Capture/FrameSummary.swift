// One line describing an Ethernet frame, as `tcpdump -n` prints it: ARP,
// ICMP and ICMPv6 (echo and neighbour discovery), and TCP over IPv4 and
// IPv6 (`Flags [S.], seq …, ack …, win …, options […], length …`, sequence
// numbers relative to the connection's first ones once a segment with ACK
// has been seen, as tcpdump does unless -S). DHCP and DNS are decoded in
// sovnet's own words. `-e` puts the link-level header first, `-v` the IP
// header's fields. A frame that does not parse is described with the
// parser's error.
import SovnetWire

/// What kind of frame a summary line describes, for the totals.
public enum FrameKind: String, CaseIterable, Sendable {
    case arp = "ARP", tcp = "TCP", udp = "UDP", icmp = "ICMP", otherIPv4 = "other IPv4"
    case ipv6 = "IPv6", other = "other", malformed = "malformed"
}

/// How much a summary line says, as tcpdump's flags.
public struct SummaryStyle: Sendable, Equatable {
    /// `-e`: the link-level header (addresses, EtherType, frame length).
    public var linkHeader = false
    /// `-v`: the IP header's fields.
    public var verbose = false

    public init(linkHeader: Bool = false, verbose: Bool = false) {
        self.linkHeader = linkHeader
        self.verbose = verbose
    }
}

/// Describes frames one line at a time (without timestamps), keeping each
/// TCP connection's first sequence numbers for relative numbering.
public final class FrameSummary {
    public let style: SummaryStyle
    private var sequences = TCPSequenceBases()

    public init(style: SummaryStyle = SummaryStyle()) {
        self.style = style
    }

    /// The description of one frame, with absolute TCP numbers (for logs).
    public static func describe(_ frame: [UInt8]) -> (text: String, kind: FrameKind) {
        FrameSummary().describe(frame)
    }

    /// The description of the next frame and its kind.
    public func describe(_ frame: [UInt8]) -> (text: String, kind: FrameKind) {
        frame.withUnsafeBytes { raw in
            do throws(WireError) {
                return try describe(raw)
            } catch {
                return ("malformed: \(error)", .malformed)
            }
        }
    }

    private func describe(_ raw: UnsafeRawBufferPointer) throws(WireError) -> (text: String, kind: FrameKind) {
        let ethernet = try EthernetView(raw)
        let type = ethernet.etherType
        let link = style.linkHeader
            ? "\(ethernet.source) > \(ethernet.destination), ethertype \(Self.name(of: type)) (0x"
                + Self.hex(type.rawValue, digits: 4) + "), length \(raw.count): "
            : nil
        let (text, kind): (String, FrameKind)
        switch type {
        case .arp:
            let arp = try ARPPacket.parse(ethernet.payload)
            let what = switch arp.operation {
            case .request: "Request who-has \(arp.targetIP) tell \(arp.senderIP)"
            case .reply: "Reply \(arp.senderIP) is-at \(arp.senderMAC)"
            default: "operation \(arp.operation.rawValue)"
            }
            let hardware = style.verbose ? "Ethernet (len 6), IPv4 (len 4), " : ""
            (text, kind) = ((link == nil ? "ARP, " : "") + hardware + "\(what), length \(ethernet.payload.count)", .arp)
        case .ipv4:
            (text, kind) = try describeIPv4(try IPv4View(ethernet.payload), prefix: link == nil ? "IP " : "")
        case .ipv6:
            (text, kind) = try describeIPv6(try IPv6View(ethernet.payload), prefix: link == nil ? "IP6 " : "")
        default:
            (text, kind) = (link == nil ? "\(ethernet.source) > \(ethernet.destination), ethertype \(Self.name(of: type)) (0x"
                + Self.hex(type.rawValue, digits: 4) + "), length \(raw.count)" : "", .other)
        }
        return ((link ?? "") + text, kind)
    }

    // MARK: IPv4 and IPv6

    private func describeIPv4(_ ip: IPv4View, prefix: String) throws(WireError) -> (text: String, kind: FrameKind) {
        var head = prefix
        if style.verbose {
            let flags = [ip.moreFragments ? "+" : nil, ip.dontFragment ? "DF" : nil].compactMap { $0 }
            head = "\(prefix)(tos 0x\(String(ip.dscp << 2 | ip.ecn, radix: 16)), ttl \(ip.ttl), id \(ip.identification), "
                + "offset \(ip.fragmentOffset), flags [\(flags.isEmpty ? "none" : flags.joined(separator: ", "))], "
                + "proto \(Self.name(of: ip.protocol)) (\(ip.protocol.rawValue)), length \(ip.totalLength))\n    "
        }
        let source = "\(ip.source)", destination = "\(ip.destination)"
        if ip.fragmentOffset != 0 {
            return ("\(head)\(source) > \(destination): \(ip.protocol) fragment id \(ip.identification) "
                    + "offset \(ip.fragmentOffset)\(ip.moreFragments ? "+" : ""), length \(ip.payload.count)",
                    Self.kind(of: ip.protocol))
        }
        // A first fragment reads as the datagram it begins (its length is the
        // fragment's), as tcpdump has it; -v shows the `+` of more fragments.
        if let text = try describeTransport(ip.protocol, ip.payload, source, destination) {
            return (head + text, Self.kind(of: ip.protocol))
        }
        switch ip.protocol {
        case .icmp:
            let icmp = try ICMPv4View(ip.payload, verifyChecksum: !ip.moreFragments)
            return ("\(head)\(source) > \(destination): ICMP \(Self.describe(icmp)), length \(icmp.body.count + 8)", .icmp)
        default:
            return ("\(head)\(source) > \(destination): \(ip.protocol), length \(ip.payload.count)", .otherIPv4)
        }
    }

    private func describeIPv6(_ ip: IPv6View, prefix: String) throws(WireError) -> (text: String, kind: FrameKind) {
        var head = prefix
        if style.verbose {
            head = "\(prefix)(hlim \(ip.hopLimit), next-header \(Self.name(of: ip.nextHeader)) (\(ip.nextHeader.rawValue)) "
                + "payload length: \(ip.payloadLength)) "
        }
        let upper = try ip.upperLayer()
        let source = "\(ip.source)", destination = "\(ip.destination)"
        let hopByHop = ip.nextHeader.rawValue == 0 ? "HBH " : ""
        if let fragment = upper.fragment, fragment.offset != 0 || fragment.moreFragments {
            return ("\(head)\(source) > \(destination): frag (0x\(Self.hex(fragment.identification, digits: 8)):"
                    + "\(fragment.offset)|\(upper.payload.count)) \(upper.protocol)", .ipv6)
        }
        if let text = try describeTransport(upper.protocol, upper.payload, source, destination) { return (head + text, .ipv6) }
        switch upper.protocol {
        case .icmpv6:
            let icmp = try ICMPv6View(upper.payload, source: nil, destination: nil)
            return ("\(head)\(source) > \(destination): \(hopByHop)ICMP6, \(try Self.describe(icmp))", .ipv6)
        default:
            return ("\(head)\(source) > \(destination): \(hopByHop)\(Self.name(of: upper.protocol)), "
                    + "length \(upper.payload.count)", .ipv6)
        }
    }

    // MARK: TCP and UDP

    /// A TCP or UDP line after the IP addresses are known; nil for other protocols.
    private func describeTransport(_ proto: IPProtocol, _ payload: UnsafeRawBufferPointer, _ source: String,
                                   _ destination: String) throws(WireError) -> String? {
        switch proto {
        case .tcp:
            return try describeTCP(try TCPView(payload), source, destination)
        case .udp:
            let udp = try UDPView(payload)
            return "\(source).\(udp.sourcePort) > \(destination).\(udp.destinationPort): " + Self.describeUDPPayload(udp)
        default:
            return nil
        }
    }

    /// `1.2.3.4.80 > 5.6.7.8.40000: Flags [P.], seq 1:101, ack 1, win 502, options [nop,nop,TS val 1 ecr 2], length 100`.
    private func describeTCP(_ tcp: TCPView, _ source: String, _ destination: String) throws(WireError) -> String {
        let flags = tcp.flags
        let length = tcp.payload.count
        var seq = tcp.sequenceNumber
        var ack = tcp.acknowledgmentNumber
        if flags.contains(.ack) {
            (seq, ack) = sequences.relative(from: TCPEndpoint(source, tcp.sourcePort), to: TCPEndpoint(destination, tcp.destinationPort),
                                            seq: seq, ack: ack, syn: flags.contains(.syn))
        }
        var text = "\(source).\(tcp.sourcePort) > \(destination).\(tcp.destinationPort): Flags [\(Self.letters(flags))]"
        if length > 0 || !flags.intersection([.syn, .fin, .rst]).isEmpty {
            text += ", seq \(seq)"
            if length > 0 { text += ":\(seq &+ UInt32(truncatingIfNeeded: length))" }
        }
        if flags.contains(.ack) { text += ", ack \(ack)" }
        text += ", win \(tcp.window)"
        if flags.contains(.urg) { text += ", urg \(tcp.urgentPointer)" }
        let options = try Self.describeOptions(tcp)
        if !options.isEmpty { text += ", options [\(options.joined(separator: ","))]" }
        text += ", length \(length)"
        if let dns = Self.dnsOverTCP(tcp) { text += ": " + Self.describe(dns) }
        return text
    }

    /// tcpdump's flag letters, in bit order: F S R P . U E W ("none" for none).
    static func letters(_ flags: TCPFlags) -> String {
        let table: [(TCPFlags, String)] = [(.fin, "F"), (.syn, "S"), (.rst, "R"), (.psh, "P"), (.ack, "."), (.urg, "U"),
                                           (.ece, "E"), (.cwr, "W")]
        let text = table.filter { flags.contains($0.0) }.map { $0.1 }.joined()
        return text.isEmpty ? "none" : text
    }

    /// The options in their order, named as tcpdump names them.
    static func describeOptions(_ tcp: TCPView) throws(WireError) -> [String] {
        try tcp.optionList().map { option in
            switch option {
            case .endOfList: "eol"
            case .noOperation: "nop"
            case .maximumSegmentSize(let size): "mss \(size)"
            case .windowScale(let shift): "wscale \(shift)"
            case .sackPermitted: "sackOK"
            case .sack(let blocks): "sack \(blocks.count) " + blocks.map { "{\($0.0):\($0.1)}" }.joined()
            case .timestamps(let value, let echoReply): "TS val \(value) ecr \(echoReply)"
            case .other(let kind, let value): "unknown-\(kind) 0x" + value.map { hex($0, digits: 2) }.joined()
            }
        }
    }

    // MARK: UDP, DHCP, DNS, ICMP

    static func describeUDPPayload(_ udp: UDPView) -> String {
        let ports = [udp.sourcePort, udp.destinationPort]
        let length = ", length \(udp.payload.count)"
        if ports.contains(67) || ports.contains(68) {
            guard let message = try? DHCPMessage.parse(udp.payload) else { return "DHCP (malformed)" + length }
            var text = "DHCP \(message.messageType?.description ?? "BOOTP")"
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
        if ports.contains(546) || ports.contains(547) {
            // As tcpdump prints it: the message type alone.
            guard let message = try? DHCPv6Message.parse(udp.payload) else { return "dhcp6 (malformed)" + length }
            return "dhcp6 \(message.type)"
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

    /// `neighbor solicitation, who has fe80::1, length 32`, as tcpdump words ICMPv6.
    static func describe(_ icmp: ICMPv6View) throws(WireError) -> String {
        let length = ", length \(icmp.bytes.count)"
        switch icmp.type {
        case .echoRequest, .echoReply:
            let (identifier, sequence) = try icmp.echo()
            return "echo \(icmp.type == .echoRequest ? "request" : "reply"), id \(identifier), seq \(sequence)" + length
        case .neighborSolicitation: return "neighbor solicitation, who has \(try icmp.target())" + length
        case .neighborAdvertisement: return "neighbor advertisement, tgt is \(try icmp.target())" + length
        case .routerSolicitation: return "router solicitation" + length
        case .routerAdvertisement: return "router advertisement" + length
        case .redirect: return "redirect" + length
        case .multicastListenerReportV2:
            let records = icmp.bytes.count >= 8 ? Int(icmp.bytes[6]) << 8 | Int(icmp.bytes[7]) : 0
            return "multicast listener report v2, \(records) group record(s)" + length
        case .destinationUnreachable: return "destination unreachable, code \(icmp.code)" + length
        case .packetTooBig: return "packet too big" + length
        case .timeExceeded: return "time exceeded in-transit" + length
        case .parameterProblem: return "parameter problem" + length
        default: return "type-#\(icmp.type.rawValue)" + length
        }
    }

    // MARK: Names

    static func kind(of protocol: IPProtocol) -> FrameKind {
        switch `protocol` {
        case .tcp: .tcp
        case .udp: .udp
        case .icmp: .icmp
        default: .otherIPv4
        }
    }

    /// tcpdump's names of IP protocols in `-v` lines.
    static func name(of protocol: IPProtocol) -> String {
        switch `protocol`.rawValue {
        case 0: "Options"
        case 1: "ICMP"
        case 6: "TCP"
        case 17: "UDP"
        case 43: "Routing"
        case 44: "Fragment"
        case 58: "ICMPv6"
        case 59: "NoNext"
        case 60: "DSTOpts"
        default: "unknown"
        }
    }

    /// tcpdump's names of EtherTypes in `-e` lines.
    static func name(of type: EtherType) -> String {
        switch type {
        case .ipv4: "IPv4"
        case .arp: "ARP"
        case .ipv6: "IPv6"
        default: "Unknown"
        }
    }

    static func hex<Value: BinaryInteger>(_ value: Value, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// One end of a TCP connection as a summary line shows it.
struct TCPEndpoint: Hashable {
    let address: String
    let port: UInt16

    init(_ address: String, _ port: UInt16) {
        self.address = address
        self.port = port
    }
}

/// Each connection's first sequence numbers, both ways, as tcpdump keeps
/// them: set by the first segment with ACK (or again by a SYN-ACK), which is
/// shown with absolute numbers; later ones are shown relative to them.
struct TCPSequenceBases {
    private var bases: [TCPEndpoint: [TCPEndpoint: UInt32]] = [:]
    /// Endpoints kept at most; past it every base is forgotten and numbering starts again.
    static let capacity = 65_536

    mutating func relative(from source: TCPEndpoint, to destination: TCPEndpoint, seq: UInt32, ack: UInt32,
                           syn: Bool) -> (UInt32, UInt32) {
        if !syn, let mine = bases[source]?[destination], let theirs = bases[destination]?[source] {
            return (seq &- mine, ack &- theirs)
        }
        if bases.count >= Self.capacity { bases.removeAll() }
        bases[source, default: [:]][destination] = seq
        bases[destination, default: [:]][source] = ack &- 1
        return (seq, ack)
    }
}
