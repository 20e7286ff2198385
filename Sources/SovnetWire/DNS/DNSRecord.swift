// DNS questions and resource records (RFC 1035 §4.1.2–4.1.3), with typed
// data for the record types a resolver for VMs serves: A, AAAA (RFC 3596),
// NS, CNAME, PTR, MX, TXT, SRV (RFC 2782) and SOA. Any other type, EDNS OPT
// (RFC 6891) included, keeps its data as raw bytes.

/// A DNS record type (QTYPE/TYPE).
public struct DNSRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let ptr = DNSRecordType(rawValue: 12)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)
    public static let any = DNSRecordType(rawValue: 255)

    private static let names: [UInt16: String] = [
        1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
        33: "SRV", 41: "OPT", 65: "HTTPS", 255: "ANY",
    ]

    public var description: String { Self.names[rawValue] ?? "TYPE\(rawValue)" }
}

/// The class of a record; only IN matters here.
public struct DNSClass: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let internet = DNSClass(rawValue: 1)
}

/// One entry of the question section.
public struct DNSQuestion: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSRecordType
    public var `class`: DNSClass

    public init(name: DNSName, type: DNSRecordType, class: DNSClass = .internet) {
        self.name = name
        self.type = type
        self.class = `class`
    }
}

/// The start-of-authority data of an SOA record.
public struct DNSStartOfAuthority: Hashable, Sendable {
    public var primaryServer: DNSName
    public var mailbox: DNSName
    public var serial: UInt32
    public var refresh: UInt32
    public var retry: UInt32
    public var expire: UInt32
    public var minimumTTL: UInt32

    public init(primaryServer: DNSName, mailbox: DNSName, serial: UInt32, refresh: UInt32,
                retry: UInt32, expire: UInt32, minimumTTL: UInt32) {
        self.primaryServer = primaryServer
        self.mailbox = mailbox
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimumTTL = minimumTTL
    }
}

/// The data of a resource record.
public enum DNSRecordData: Hashable, Sendable {
    case a(IPv4Address)
    case aaaa(IPv6Address)
    case ns(DNSName)
    case cname(DNSName)
    case ptr(DNSName)
    case mx(preference: UInt16, exchange: DNSName)
    /// One or more character strings, each at most 255 bytes.
    case txt([[UInt8]])
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    case soa(DNSStartOfAuthority)
    /// Any other type, as its bytes.
    case raw([UInt8])
}

/// A resource record of the answer, authority or additional section.
public struct DNSResourceRecord: Hashable, Sendable {
    public var name: DNSName
    public var type: DNSRecordType
    /// The class; for OPT, the requester's UDP payload size.
    public var `class`: DNSClass
    /// The time to live; for OPT, the extended RCODE and flags.
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, type: DNSRecordType, class: DNSClass = .internet, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.class = `class`
        self.ttl = ttl
        self.data = data
    }

    /// Reads a record at `offset`, moving `offset` past it.
    static func read(from message: UnsafeRawBufferPointer, at offset: inout Int) throws(WireError) -> DNSResourceRecord {
        let name = try DNSName.read(from: message, at: &offset)
        guard offset + 10 <= message.count else { throw WireError(.truncated, .dns, "record header") }
        let type = DNSRecordType(rawValue: message.be16(offset))
        let recordClass = DNSClass(rawValue: message.be16(offset + 2))
        let ttl = message.be32(offset + 4)
        let dataLength = Int(message.be16(offset + 8))
        let dataStart = offset + 10
        let dataEnd = dataStart + dataLength
        guard dataEnd <= message.count else { throw WireError(.truncated, .dns, "record data") }
        let data = try readData(type: type, from: message, start: dataStart, end: dataEnd)
        offset = dataEnd
        return DNSResourceRecord(name: name, type: type, class: recordClass, ttl: ttl, data: data)
    }

    private static func readData(type: DNSRecordType, from message: UnsafeRawBufferPointer,
                                 start: Int, end: Int) throws(WireError) -> DNSRecordData {
        let length = end - start
        /// Reads a name that must lie inside the record data.
        func name(at offset: inout Int) throws(WireError) -> DNSName {
            let value = try DNSName.read(from: message, at: &offset)
            guard offset <= end else { throw WireError(.badLength, .dns, "record data") }
            return value
        }
        func finish<T>(_ value: T, at offset: Int) throws(WireError) -> T {
            guard offset == end else { throw WireError(.badLength, .dns, "record data") }
            return value
        }
        var offset = start
        switch type {
        case .a:
            guard length == 4 else { throw WireError(.badLength, .dns, "A record") }
            return .a(IPv4Address(message, at: start))
        case .aaaa:
            guard length == 16 else { throw WireError(.badLength, .dns, "AAAA record") }
            return .aaaa(IPv6Address(message, at: start))
        case .ns:
            return try finish(.ns(try name(at: &offset)), at: offset)
        case .cname:
            return try finish(.cname(try name(at: &offset)), at: offset)
        case .ptr:
            return try finish(.ptr(try name(at: &offset)), at: offset)
        case .mx:
            guard length >= 3 else { throw WireError(.badLength, .dns, "MX record") }
            offset += 2
            let exchange = try name(at: &offset)
            return try finish(.mx(preference: message.be16(start), exchange: exchange), at: offset)
        case .txt:
            var strings: [[UInt8]] = []
            while offset < end {
                let stringLength = Int(message[offset])
                guard offset + 1 + stringLength <= end else { throw WireError(.badLength, .dns, "TXT string") }
                strings.append(Array(message.slice(offset + 1, offset + 1 + stringLength)))
                offset += 1 + stringLength
            }
            return .txt(strings)
        case .srv:
            guard length >= 7 else { throw WireError(.badLength, .dns, "SRV record") }
            offset += 6
            let target = try name(at: &offset)
            return try finish(.srv(priority: message.be16(start), weight: message.be16(start + 2),
                                   port: message.be16(start + 4), target: target), at: offset)
        case .soa:
            let primary = try name(at: &offset)
            let mailbox = try name(at: &offset)
            guard offset + 20 == end else { throw WireError(.badLength, .dns, "SOA record") }
            return .soa(DNSStartOfAuthority(
                primaryServer: primary, mailbox: mailbox, serial: message.be32(offset),
                refresh: message.be32(offset + 4), retry: message.be32(offset + 8),
                expire: message.be32(offset + 12), minimumTTL: message.be32(offset + 16)))
        default:
            return .raw(Array(message.slice(start, end)))
        }
    }

    /// Appends the record, compressing its owner name and the names in the
    /// data of the types RFC 3597 §4 allows.
    func emit(into out: inout [UInt8], compressor: inout DNSNameCompressor) throws(WireError) {
        try name.validate()
        compressor.write(name, into: &out)
        out.appendBE16(type.rawValue)
        out.appendBE16(self.class.rawValue)
        out.appendBE32(ttl)
        let lengthAt = out.count
        out.appendBE16(0)
        switch data {
        case .a(let address):
            address.append(to: &out)
        case .aaaa(let address):
            address.append(to: &out)
        case .ns(let target), .cname(let target), .ptr(let target):
            try target.validate()
            compressor.write(target, into: &out)
        case .mx(let preference, let exchange):
            try exchange.validate()
            out.appendBE16(preference)
            compressor.write(exchange, into: &out)
        case .txt(let strings):
            for string in strings {
                guard string.count <= 255 else { throw WireError(.badLength, .dns, "TXT string") }
                out.append(UInt8(string.count))
                out.append(contentsOf: string)
            }
        case .srv(let priority, let weight, let port, let target):
            try target.validate()
            out.appendBE16(priority)
            out.appendBE16(weight)
            out.appendBE16(port)
            compressor.write(target, into: &out, compress: false)
        case .soa(let soa):
            try soa.primaryServer.validate()
            try soa.mailbox.validate()
            compressor.write(soa.primaryServer, into: &out)
            compressor.write(soa.mailbox, into: &out)
            for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimumTTL] {
                out.appendBE32(value)
            }
        case .raw(let bytes):
            out.append(contentsOf: bytes)
        }
        let dataLength = out.count - lengthAt - 2
        guard dataLength <= 0xFFFF else { throw WireError(.badLength, .dns, "record data") }
        out.storeBE16(UInt16(dataLength), at: lengthAt)
    }
}
