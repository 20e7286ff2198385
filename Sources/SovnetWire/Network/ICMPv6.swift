// ICMPv6 messages (RFC 4443) and the neighbour discovery ones (RFC 4861):
// a view checked against the IPv6 pseudo-header's checksum, and the fields
// of router and neighbour solicitations and advertisements with their
// options. Option lengths are in units of 8 octets and 0 is invalid
// (RFC 4861 §4.6), so a walk over them always advances and never leaves
// the message.

/// An ICMPv6 message type.
public struct ICMPv6Type: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let destinationUnreachable = ICMPv6Type(rawValue: 1)
    public static let packetTooBig = ICMPv6Type(rawValue: 2)
    public static let timeExceeded = ICMPv6Type(rawValue: 3)
    public static let parameterProblem = ICMPv6Type(rawValue: 4)
    public static let echoRequest = ICMPv6Type(rawValue: 128)
    public static let echoReply = ICMPv6Type(rawValue: 129)
    public static let routerSolicitation = ICMPv6Type(rawValue: 133)
    public static let routerAdvertisement = ICMPv6Type(rawValue: 134)
    public static let neighborSolicitation = ICMPv6Type(rawValue: 135)
    public static let neighborAdvertisement = ICMPv6Type(rawValue: 136)
    public static let redirect = ICMPv6Type(rawValue: 137)
    public static let multicastListenerReportV2 = ICMPv6Type(rawValue: 143)
}

/// A checked view of an ICMPv6 message in borrowed bytes.
public struct ICMPv6View {
    public let bytes: UnsafeRawBufferPointer
    public static let headerLength = 4

    /// - Parameters: source, destination: the IPv6 addresses, for the
    ///   checksum; nil to take the message without checking it.
    public init(_ bytes: UnsafeRawBufferPointer, source: IPv6Address?, destination: IPv6Address?) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw WireError(.truncated, .icmpv6, "header") }
        if let source, let destination {
            var sum = InternetChecksum()
            sum.addPseudoHeader(source: source, destination: destination, protocol: .icmpv6, length: bytes.count)
            sum.add(bytes)
            guard sum.value == 0 else { throw WireError(.badChecksum, .icmpv6, "checksum") }
        }
        self.bytes = bytes
    }

    public var type: ICMPv6Type { ICMPv6Type(rawValue: bytes[0]) }
    public var code: UInt8 { bytes[1] }
    public var checksum: UInt16 { bytes.be16(2) }
    /// Everything after type, code and checksum.
    public var body: UnsafeRawBufferPointer { bytes.suffix(from: Self.headerLength) }

    /// An echo request's or reply's identifier and sequence number.
    public func echo() throws(WireError) -> (identifier: UInt16, sequence: UInt16) {
        guard type == .echoRequest || type == .echoReply else { throw WireError(.badValue, .icmpv6, "type") }
        guard bytes.count >= 8 else { throw WireError(.truncated, .icmpv6, "echo") }
        return (bytes.be16(4), bytes.be16(6))
    }

    /// The target of a neighbour solicitation or advertisement (or of a redirect).
    public func target() throws(WireError) -> IPv6Address {
        guard type == .neighborSolicitation || type == .neighborAdvertisement || type == .redirect else {
            throw WireError(.badValue, .icmpv6, "type")
        }
        guard bytes.count >= 24 else { throw WireError(.truncated, .icmpv6, "target") }
        return IPv6Address(bytes, at: 8)
    }

    /// A neighbour advertisement's flags: router, solicited, override.
    public var advertisementFlags: (router: Bool, solicited: Bool, override: Bool) {
        let flags = bytes.count > 4 ? bytes[4] : 0
        return (flags & 0x80 != 0, flags & 0x40 != 0, flags & 0x20 != 0)
    }

    /// A router advertisement's fields.
    public func routerAdvertisement() throws(WireError) -> RouterAdvertisement {
        guard type == .routerAdvertisement else { throw WireError(.badValue, .icmpv6, "type") }
        guard bytes.count >= 16 else { throw WireError(.truncated, .icmpv6, "router advertisement") }
        return RouterAdvertisement(hopLimit: bytes[4], managed: bytes[5] & 0x80 != 0, otherConfiguration: bytes[5] & 0x40 != 0,
                                   routerLifetime: bytes.be16(6), reachableTime: bytes.be32(8), retransmitTimer: bytes.be32(12))
    }

    /// The options of a neighbour discovery message, in order.
    public func options() throws(WireError) -> [NDPOption] {
        let start: Int
        switch type {
        case .routerSolicitation: start = 8
        case .routerAdvertisement: start = 16
        case .neighborSolicitation, .neighborAdvertisement: start = 24
        case .redirect: start = 40
        default: throw WireError(.badValue, .icmpv6, "type")
        }
        guard bytes.count >= start else { throw WireError(.truncated, .icmpv6, "options") }
        var options: [NDPOption] = []
        var offset = start
        while offset < bytes.count {
            guard offset + 2 <= bytes.count else { throw WireError(.truncated, .icmpv6, "option") }
            let length = Int(bytes[offset + 1]) * 8
            guard length > 0 else { throw WireError(.badLength, .icmpv6, "option length") }
            guard offset + length <= bytes.count else { throw WireError(.truncated, .icmpv6, "option") }
            options.append(NDPOption(bytes.slice(offset, offset + length)))
            offset += length
        }
        return options
    }
}

/// The fixed fields of a router advertisement (RFC 4861 §4.2).
public struct RouterAdvertisement: Sendable, Equatable {
    public var hopLimit: UInt8
    public var managed: Bool
    public var otherConfiguration: Bool
    /// Seconds; 0: not a default router.
    public var routerLifetime: UInt16
    public var reachableTime: UInt32
    public var retransmitTimer: UInt32
}

/// One neighbour discovery option, decoded where this code knows it.
public enum NDPOption: Sendable, Equatable {
    case sourceLinkLayer(MACAddress)
    case targetLinkLayer(MACAddress)
    /// Prefix information (RFC 4861 §4.6.2).
    case prefix(IPv6Address, length: UInt8, onLink: Bool, autonomous: Bool, validLifetime: UInt32, preferredLifetime: UInt32)
    case mtu(UInt32)
    /// Recursive DNS servers (RFC 8106 §5.1).
    case dnsServers([IPv6Address], lifetime: UInt32)
    /// DNS search list (RFC 8106 §5.2), as the raw encoded names.
    case searchList([UInt8], lifetime: UInt32)
    case other(type: UInt8, length: Int)

    /// `option` holds the whole option, its length already checked.
    init(_ option: UnsafeRawBufferPointer) {
        let type = option[0]
        switch type {
        case 1 where option.count >= 8: self = .sourceLinkLayer(MACAddress(option, at: 2))
        case 2 where option.count >= 8: self = .targetLinkLayer(MACAddress(option, at: 2))
        case 3 where option.count >= 32:
            self = .prefix(IPv6Address(option, at: 16), length: option[2], onLink: option[3] & 0x80 != 0,
                           autonomous: option[3] & 0x40 != 0, validLifetime: option.be32(4), preferredLifetime: option.be32(8))
        case 5 where option.count >= 8: self = .mtu(option.be32(4))
        case 25 where option.count >= 24:
            let servers = stride(from: 8, to: option.count - 15, by: 16).map { IPv6Address(option, at: $0) }
            self = .dnsServers(servers, lifetime: option.be32(4))
        case 31 where option.count >= 8: self = .searchList(Array(option.suffix(from: 8)), lifetime: option.be32(4))
        default: self = .other(type: type, length: option.count)
        }
    }
}

extension ICMPv6View {
    /// Appends an ICMPv6 message, its checksum over the IPv6 pseudo-header
    /// of `source` and `destination`: type, code, then `body` (what follows
    /// the checksum: an echo's identifier, sequence and data, a neighbour
    /// message's flags, target and options).
    public static func emit(type: ICMPv6Type, code: UInt8 = 0, body: [UInt8], source: IPv6Address,
                            destination: IPv6Address, into out: inout [UInt8]) {
        let start = out.count
        out.append(type.rawValue)
        out.append(code)
        out.appendBE16(0)
        out.append(contentsOf: body)
        var sum = InternetChecksum()
        sum.addPseudoHeader(source: source, destination: destination, protocol: .icmpv6, length: out.count - start)
        out.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        out.storeBE16(sum.value, at: start + 2)
    }
}

extension ICMPv6View {
    /// Appends an ICMPv6 message whose four bytes after the checksum are
    /// `header` (an echo's identifier and sequence, a packet-too-big's MTU,
    /// zero for unreachable) and whose data is `body`, borrowed.
    public static func emit(type: ICMPv6Type, code: UInt8 = 0, header: UInt32, body: UnsafeRawBufferPointer,
                            source: IPv6Address, destination: IPv6Address, into out: inout [UInt8]) {
        let start = out.count
        out.append(type.rawValue)
        out.append(code)
        out.appendBE16(0)
        out.appendBE32(header)
        out.append(contentsOf: body)
        var sum = InternetChecksum()
        sum.addPseudoHeader(source: source, destination: destination, protocol: .icmpv6, length: out.count - start)
        out.withUnsafeBytes { sum.add(UnsafeRawBufferPointer(rebasing: $0[start...])) }
        out.storeBE16(sum.value, at: start + 2)
    }
}

/// Codes of ICMPv6 destination unreachable (RFC 4443 §3.1).
public enum ICMPv6UnreachableCode {
    public static let noRoute: UInt8 = 0
    public static let administrativelyProhibited: UInt8 = 1
    public static let address: UInt8 = 3
    public static let port: UInt8 = 4
}

extension RouterAdvertisement {
    public init(hopLimit: UInt8 = 64, routerLifetime: UInt16, managed: Bool = false, otherConfiguration: Bool = false) {
        self.init(hopLimit: hopLimit, managed: managed, otherConfiguration: otherConfiguration, routerLifetime: routerLifetime,
                  reachableTime: 0, retransmitTimer: 0)
    }

    /// The message after its checksum: these fields, then `options`.
    public func body(options: [NDPOption]) -> [UInt8] {
        var out: [UInt8] = [hopLimit, (managed ? 0x80 : 0) | (otherConfiguration ? 0x40 : 0)]
        out.appendBE16(routerLifetime)
        out.appendBE32(reachableTime)
        out.appendBE32(retransmitTimer)
        for option in options { option.emit(into: &out) }
        return out
    }
}

extension NDPOption {
    /// A DNS search list option (RFC 8106 §5.2) of `names`, uncompressed.
    public static func searchList(_ names: [DNSName], lifetime: UInt32) -> NDPOption {
        var encoded: [UInt8] = []
        var writer = DNSNameCompressor(base: 0)
        for name in names { writer.write(name, into: &encoded, compress: false) }
        return .searchList(encoded, lifetime: lifetime)
    }

    /// The names of a DNS search list option's data: uncompressed names up
    /// to the zero padding; nil when a name is malformed or compressed.
    public static func searchDomains(_ data: [UInt8]) -> [DNSName]? {
        data.withUnsafeBytes { raw -> [DNSName]? in
            var names: [DNSName] = []
            var offset = 0
            while offset < raw.count, raw[offset] != 0 {
                guard raw[offset] & 0xC0 == 0, let name = try? DNSName.read(from: raw, at: &offset) else { return nil }
                names.append(name)
            }
            return names
        }
    }

    /// A neighbour advertisement after its checksum: flags, target, then `options`.
    public static func advertisementBody(router: Bool, solicited: Bool, override: Bool, target: IPv6Address,
                                         options: [NDPOption]) -> [UInt8] {
        var out: [UInt8] = [(router ? 0x80 : 0) | (solicited ? 0x40 : 0) | (override ? 0x20 : 0), 0, 0, 0]
        target.append(to: &out)
        for option in options { option.emit(into: &out) }
        return out
    }

    /// Appends the option, its length in units of 8 octets.
    public func emit(into out: inout [UInt8]) {
        switch self {
        case .sourceLinkLayer(let mac), .targetLinkLayer(let mac):
            out += [self == .sourceLinkLayer(mac) ? 1 : 2, 1] + mac.octets
        case .prefix(let prefix, let length, let onLink, let autonomous, let valid, let preferred):
            out += [3, 4, length, (onLink ? 0x80 : 0) | (autonomous ? 0x40 : 0)]
            out.appendBE32(valid)
            out.appendBE32(preferred)
            out.appendBE32(0)
            prefix.append(to: &out)
        case .mtu(let mtu):
            out += [5, 1, 0, 0]
            out.appendBE32(mtu)
        case .dnsServers(let servers, let lifetime):
            out += [25, UInt8(truncatingIfNeeded: 1 + 2 * servers.count), 0, 0]
            out.appendBE32(lifetime)
            for server in servers { server.append(to: &out) }
        case .searchList(let names, let lifetime):
            let padded = names + [UInt8](repeating: 0, count: (8 - (names.count % 8)) % 8)
            out += [31, UInt8(truncatingIfNeeded: 1 + padded.count / 8), 0, 0]
            out.appendBE32(lifetime)
            out += padded
        case .other:
            break
        }
    }
}
