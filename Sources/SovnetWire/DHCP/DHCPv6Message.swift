// DHCPv6 messages (RFC 8415 §8, §21) between clients and servers: a type,
// a 24-bit transaction ID, and options of a 16-bit code and a 16-bit length.
// Options this code knows are decoded (identifiers, identity associations
// for addresses with their addresses and status codes inside, the option
// request list, preference, elapsed time, rapid commit, and the DNS servers
// and domain list of RFC 3646); the others are kept as bytes. Options nest
// (an address inside an IA_NA, a status code inside either); the nesting is
// bounded by `maximumDepth`, and every length is checked against what
// encloses it. Relay messages, whose header differs, are refused.

/// A DHCPv6 message type.
public struct DHCPv6MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let solicit = DHCPv6MessageType(rawValue: 1)
    public static let advertise = DHCPv6MessageType(rawValue: 2)
    public static let request = DHCPv6MessageType(rawValue: 3)
    public static let confirm = DHCPv6MessageType(rawValue: 4)
    public static let renew = DHCPv6MessageType(rawValue: 5)
    public static let rebind = DHCPv6MessageType(rawValue: 6)
    public static let reply = DHCPv6MessageType(rawValue: 7)
    public static let release = DHCPv6MessageType(rawValue: 8)
    public static let decline = DHCPv6MessageType(rawValue: 9)
    public static let reconfigure = DHCPv6MessageType(rawValue: 10)
    public static let informationRequest = DHCPv6MessageType(rawValue: 11)

    /// The name tcpdump gives it.
    public var description: String {
        let names = ["solicit", "advertise", "request", "confirm", "renew", "rebind", "reply", "release", "decline",
                     "reconfigure", "inf-req", "relay-fwd", "relay-reply"]
        return (1...names.count).contains(Int(rawValue)) ? names[Int(rawValue) - 1] : "type \(rawValue)"
    }
}

/// A status code (RFC 8415 §21.13).
public struct DHCPv6Status: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let success = DHCPv6Status(rawValue: 0)
    public static let unspecifiedFailure = DHCPv6Status(rawValue: 1)
    public static let noAddressesAvailable = DHCPv6Status(rawValue: 2)
    public static let noBinding = DHCPv6Status(rawValue: 3)
    public static let notOnLink = DHCPv6Status(rawValue: 4)
    public static let useMulticast = DHCPv6Status(rawValue: 5)
}

/// An identity association for non-temporary addresses (IA_NA, RFC 8415 §21.4).
public struct DHCPv6IdentityAssociation: Hashable, Sendable {
    public var identifier: UInt32
    /// Seconds until the client renews and rebinds.
    public var renewalTime: UInt32
    public var rebindingTime: UInt32
    /// Its addresses and status code.
    public var options: [DHCPv6Option]

    public init(identifier: UInt32, renewalTime: UInt32, rebindingTime: UInt32, options: [DHCPv6Option] = []) {
        self.identifier = identifier
        self.renewalTime = renewalTime
        self.rebindingTime = rebindingTime
        self.options = options
    }

    /// The addresses in it.
    public var addresses: [DHCPv6Address] {
        options.compactMap { if case .address(let address) = $0 { address } else { nil } }
    }
}

/// An address in an identity association (IAADDR, RFC 8415 §21.6).
public struct DHCPv6Address: Hashable, Sendable {
    public var address: IPv6Address
    public var preferredLifetime: UInt32
    public var validLifetime: UInt32
    public var options: [DHCPv6Option]

    public init(address: IPv6Address, preferredLifetime: UInt32, validLifetime: UInt32, options: [DHCPv6Option] = []) {
        self.address = address
        self.preferredLifetime = preferredLifetime
        self.validLifetime = validLifetime
        self.options = options
    }
}

/// One DHCPv6 option.
public indirect enum DHCPv6Option: Hashable, Sendable {
    /// The client's and the server's DUIDs, as bytes.
    case clientID([UInt8])
    case serverID([UInt8])
    case identityAssociation(DHCPv6IdentityAssociation)
    case address(DHCPv6Address)
    /// The option codes the client asks for.
    case optionRequest([UInt16])
    case preference(UInt8)
    /// Hundredths of a second since the client began.
    case elapsedTime(UInt16)
    case status(DHCPv6Status, String)
    case rapidCommit
    case dnsServers([IPv6Address])
    case domainList([DNSName])
    case other(code: UInt16, data: [UInt8])

    public static let clientIDCode: UInt16 = 1
    public static let serverIDCode: UInt16 = 2
    public static let identityAssociationCode: UInt16 = 3
    public static let addressCode: UInt16 = 5
    public static let optionRequestCode: UInt16 = 6
    public static let preferenceCode: UInt16 = 7
    public static let elapsedTimeCode: UInt16 = 8
    public static let statusCode: UInt16 = 13
    public static let rapidCommitCode: UInt16 = 14
    public static let dnsServersCode: UInt16 = 23
    public static let domainListCode: UInt16 = 24

    public var code: UInt16 {
        switch self {
        case .clientID: Self.clientIDCode
        case .serverID: Self.serverIDCode
        case .identityAssociation: Self.identityAssociationCode
        case .address: Self.addressCode
        case .optionRequest: Self.optionRequestCode
        case .preference: Self.preferenceCode
        case .elapsedTime: Self.elapsedTimeCode
        case .status: Self.statusCode
        case .rapidCommit: Self.rapidCommitCode
        case .dnsServers: Self.dnsServersCode
        case .domainList: Self.domainListCode
        case .other(let code, _): code
        }
    }

    /// How deep options may nest (an address's status inside an IA is 3).
    public static let maximumDepth = 4

    /// Reads the options filling `bytes`.
    static func parseAll(_ bytes: UnsafeRawBufferPointer, depth: Int = 1) throws(WireError) -> [DHCPv6Option] {
        guard depth <= maximumDepth else { throw WireError(.unsupported, .dhcpv6, "option nesting") }
        var options: [DHCPv6Option] = []
        var offset = 0
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { throw WireError(.truncated, .dhcpv6, "option header") }
            let code = bytes.be16(offset)
            let length = Int(bytes.be16(offset + 2))
            guard offset + 4 + length <= bytes.count else { throw WireError(.truncated, .dhcpv6, "option") }
            options.append(try parse(code: code, bytes.slice(offset + 4, offset + 4 + length), depth: depth))
            offset += 4 + length
        }
        return options
    }

    private static func parse(code: UInt16, _ data: UnsafeRawBufferPointer, depth: Int) throws(WireError) -> DHCPv6Option {
        switch code {
        case clientIDCode, serverIDCode:
            guard (2...130).contains(data.count) else { throw WireError(.badLength, .dhcpv6, "DUID") }
            return code == clientIDCode ? .clientID(Array(data)) : .serverID(Array(data))
        case identityAssociationCode:
            guard data.count >= 12 else { throw WireError(.truncated, .dhcpv6, "IA_NA") }
            return .identityAssociation(DHCPv6IdentityAssociation(
                identifier: data.be32(0), renewalTime: data.be32(4), rebindingTime: data.be32(8),
                options: try parseAll(data.suffix(from: 12), depth: depth + 1)))
        case addressCode:
            guard data.count >= 24 else { throw WireError(.truncated, .dhcpv6, "IAADDR") }
            return .address(DHCPv6Address(address: IPv6Address(data, at: 0), preferredLifetime: data.be32(16),
                                          validLifetime: data.be32(20), options: try parseAll(data.suffix(from: 24), depth: depth + 1)))
        case optionRequestCode:
            guard data.count % 2 == 0 else { throw WireError(.badLength, .dhcpv6, "option request") }
            return .optionRequest(stride(from: 0, to: data.count, by: 2).map { data.be16($0) })
        case preferenceCode:
            guard data.count == 1 else { throw WireError(.badLength, .dhcpv6, "preference") }
            return .preference(data[0])
        case elapsedTimeCode:
            guard data.count == 2 else { throw WireError(.badLength, .dhcpv6, "elapsed time") }
            return .elapsedTime(data.be16(0))
        case statusCode:
            guard data.count >= 2 else { throw WireError(.truncated, .dhcpv6, "status code") }
            return .status(DHCPv6Status(rawValue: data.be16(0)), String(decoding: data.suffix(from: 2), as: UTF8.self))
        case rapidCommitCode:
            guard data.isEmpty else { throw WireError(.badLength, .dhcpv6, "rapid commit") }
            return .rapidCommit
        case dnsServersCode:
            guard data.count % 16 == 0 else { throw WireError(.badLength, .dhcpv6, "DNS servers") }
            return .dnsServers(stride(from: 0, to: data.count, by: 16).map { IPv6Address(data, at: $0) })
        case domainListCode:
            var names: [DNSName] = []
            var offset = 0
            while offset < data.count {
                // RFC 8415 §10: names here are never compressed.
                guard data[offset] & 0xC0 == 0 else { throw WireError(.badValue, .dhcpv6, "compressed domain name") }
                names.append(try DNSName.read(from: data, at: &offset))
            }
            return .domainList(names)
        default:
            return .other(code: code, data: Array(data))
        }
    }

    /// Appends the option, its code, length and data.
    func emit(into out: inout [UInt8]) {
        out.appendBE16(code)
        let lengthAt = out.count
        out.appendBE16(0)
        switch self {
        case .clientID(let duid), .serverID(let duid): out.append(contentsOf: duid)
        case .identityAssociation(let ia):
            out.appendBE32(ia.identifier)
            out.appendBE32(ia.renewalTime)
            out.appendBE32(ia.rebindingTime)
            for option in ia.options { option.emit(into: &out) }
        case .address(let address):
            address.address.append(to: &out)
            out.appendBE32(address.preferredLifetime)
            out.appendBE32(address.validLifetime)
            for option in address.options { option.emit(into: &out) }
        case .optionRequest(let codes): for code in codes { out.appendBE16(code) }
        case .preference(let value): out.append(value)
        case .elapsedTime(let value): out.appendBE16(value)
        case .status(let status, let message):
            out.appendBE16(status.rawValue)
            out.append(contentsOf: Array(message.utf8))
        case .rapidCommit: break
        case .dnsServers(let servers): for server in servers { server.append(to: &out) }
        case .domainList(let names):
            var writer = DNSNameCompressor(base: 0)
            for name in names { writer.write(name, into: &out, compress: false) }
        case .other(_, let data): out.append(contentsOf: data)
        }
        out.storeBE16(UInt16(truncatingIfNeeded: out.count - lengthAt - 2), at: lengthAt)
    }
}

/// A DHCPv6 client or server message.
public struct DHCPv6Message: Hashable, Sendable {
    public var type: DHCPv6MessageType
    /// 24 bits.
    public var transactionID: UInt32
    public var options: [DHCPv6Option]

    public init(type: DHCPv6MessageType, transactionID: UInt32, options: [DHCPv6Option] = []) {
        self.type = type
        self.transactionID = transactionID & 0xFF_FFFF
        self.options = options
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DHCPv6Message {
        guard bytes.count >= 4 else { throw WireError(.truncated, .dhcpv6, "header") }
        let type = DHCPv6MessageType(rawValue: bytes[0])
        guard type.rawValue >= 1, type.rawValue <= 11 else { throw WireError(.unsupported, .dhcpv6, "message type") }
        return DHCPv6Message(type: type, transactionID: bytes.be32(0) & 0xFF_FFFF,
                             options: try DHCPv6Option.parseAll(bytes.suffix(from: 4)))
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> DHCPv6Message {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    public func emit(into out: inout [UInt8]) {
        out.appendBE32(UInt32(type.rawValue) << 24 | transactionID & 0xFF_FFFF)
        for option in options { option.emit(into: &out) }
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        emit(into: &out)
        return out
    }

    public var clientID: [UInt8]? {
        options.lazy.compactMap { if case .clientID(let duid) = $0 { duid } else { nil } }.first
    }

    public var serverID: [UInt8]? {
        options.lazy.compactMap { if case .serverID(let duid) = $0 { duid } else { nil } }.first
    }

    public var identityAssociations: [DHCPv6IdentityAssociation] {
        options.compactMap { if case .identityAssociation(let ia) = $0 { ia } else { nil } }
    }

    public var requestedOptions: [UInt16] {
        options.lazy.compactMap { if case .optionRequest(let codes) = $0 { codes } else { nil } }.first ?? []
    }

    public var hasRapidCommit: Bool { options.contains(.rapidCommit) }
}
