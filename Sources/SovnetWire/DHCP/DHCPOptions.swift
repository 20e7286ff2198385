// DHCP options (RFC 2132) as an ordered list of code/data pairs.
//
// Every option is kept, known or not. On parse, instances of one code are
// joined into one value (RFC 3396), and on emit a value longer than 255 bytes
// is split again. Typed accessors cover the options a DHCP client or server
// needs; `DHCPMessage.parse` has already checked the shape of each of these,
// so the getters only return nil when an option is absent.

/// A DHCP option code.
public struct DHCPOptionCode: RawRepresentable, Hashable, Sendable, Comparable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    public static let pad = DHCPOptionCode(0)
    public static let subnetMask = DHCPOptionCode(1)
    public static let router = DHCPOptionCode(3)
    public static let domainNameServer = DHCPOptionCode(6)
    public static let hostName = DHCPOptionCode(12)
    public static let domainName = DHCPOptionCode(15)
    public static let interfaceMTU = DHCPOptionCode(26)
    public static let broadcastAddress = DHCPOptionCode(28)
    public static let requestedIPAddress = DHCPOptionCode(50)
    public static let leaseTime = DHCPOptionCode(51)
    public static let optionOverload = DHCPOptionCode(52)
    public static let messageType = DHCPOptionCode(53)
    public static let serverIdentifier = DHCPOptionCode(54)
    public static let parameterRequestList = DHCPOptionCode(55)
    public static let message = DHCPOptionCode(56)
    public static let maximumMessageSize = DHCPOptionCode(57)
    public static let renewalTime = DHCPOptionCode(58)
    public static let rebindingTime = DHCPOptionCode(59)
    public static let vendorClass = DHCPOptionCode(60)
    public static let clientIdentifier = DHCPOptionCode(61)
    public static let domainSearch = DHCPOptionCode(119)
    public static let classlessStaticRoute = DHCPOptionCode(121)
    public static let end = DHCPOptionCode(255)

    public static func < (a: DHCPOptionCode, b: DHCPOptionCode) -> Bool { a.rawValue < b.rawValue }
}

/// The DHCP message type (option 53).
public enum DHCPMessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case discover = 1, offer, request, decline, ack, nak, release, inform

    public var description: String {
        switch self {
        case .discover: "Discover"
        case .offer: "Offer"
        case .request: "Request"
        case .decline: "Decline"
        case .ack: "ACK"
        case .nak: "NAK"
        case .release: "Release"
        case .inform: "Inform"
        }
    }
}

/// One route of the classless static route option (RFC 3442).
public struct DHCPRoute: Hashable, Sendable {
    public var destination: IPv4Address
    public var prefixLength: Int
    public var router: IPv4Address

    public init(destination: IPv4Address, prefixLength: Int, router: IPv4Address) {
        self.destination = destination.masked(prefixLength: prefixLength)
        self.prefixLength = prefixLength
        self.router = router
    }
}

/// A code and its data.
public struct DHCPOption: Hashable, Sendable {
    public var code: DHCPOptionCode
    public var data: [UInt8]

    public init(code: DHCPOptionCode, data: [UInt8]) {
        self.code = code
        self.data = data
    }
}

/// The options of a DHCP message, in order.
public struct DHCPOptions: Hashable, Sendable, Sequence {
    public private(set) var list: [DHCPOption] = []

    public init() {}

    public func makeIterator() -> IndexingIterator<[DHCPOption]> { list.makeIterator() }

    /// The data of `code`, or nil.
    public subscript(code: DHCPOptionCode) -> [UInt8]? {
        get { list.first { $0.code == code }?.data }
        set {
            if let index = list.firstIndex(where: { $0.code == code }) {
                if let newValue { list[index].data = newValue } else { list.remove(at: index) }
            } else if let newValue {
                list.append(DHCPOption(code: code, data: newValue))
            }
        }
    }

    /// Appends data to `code`, joining it to an earlier instance (RFC 3396).
    mutating func join(_ code: DHCPOptionCode, _ data: UnsafeRawBufferPointer) {
        if let index = list.firstIndex(where: { $0.code == code }) {
            list[index].data.append(contentsOf: data)
        } else {
            list.append(DHCPOption(code: code, data: Array(data)))
        }
    }

    // MARK: Typed accessors

    public var messageType: DHCPMessageType? {
        get { self[.messageType].flatMap { $0.count == 1 ? DHCPMessageType(rawValue: $0[0]) : nil } }
        set { self[.messageType] = newValue.map { [$0.rawValue] } }
    }

    public var subnetMask: IPv4Address? {
        get { address(.subnetMask) }
        set { setAddress(.subnetMask, newValue) }
    }

    public var routers: [IPv4Address] {
        get { addresses(.router) }
        set { setAddresses(.router, newValue) }
    }

    public var domainNameServers: [IPv4Address] {
        get { addresses(.domainNameServer) }
        set { setAddresses(.domainNameServer, newValue) }
    }

    public var hostName: String? {
        get { text(.hostName) }
        set { self[.hostName] = newValue.map { Array($0.utf8) } }
    }

    public var domainName: String? {
        get { text(.domainName) }
        set { self[.domainName] = newValue.map { Array($0.utf8) } }
    }

    public var interfaceMTU: UInt16? {
        get { self[.interfaceMTU].flatMap { $0.count == 2 ? UInt16($0[0]) << 8 | UInt16($0[1]) : nil } }
        set { self[.interfaceMTU] = newValue.map { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
    }

    public var requestedIPAddress: IPv4Address? {
        get { address(.requestedIPAddress) }
        set { setAddress(.requestedIPAddress, newValue) }
    }

    /// Lease time in seconds; 0xFFFFFFFF means infinite.
    public var leaseTime: UInt32? {
        get { seconds(.leaseTime) }
        set { setSeconds(.leaseTime, newValue) }
    }

    public var serverIdentifier: IPv4Address? {
        get { address(.serverIdentifier) }
        set { setAddress(.serverIdentifier, newValue) }
    }

    public var parameterRequestList: [DHCPOptionCode] {
        get { (self[.parameterRequestList] ?? []).map(DHCPOptionCode.init(rawValue:)) }
        set { self[.parameterRequestList] = newValue.isEmpty ? nil : newValue.map { $0.rawValue } }
    }

    /// T1, in seconds.
    public var renewalTime: UInt32? {
        get { seconds(.renewalTime) }
        set { setSeconds(.renewalTime, newValue) }
    }

    /// T2, in seconds.
    public var rebindingTime: UInt32? {
        get { seconds(.rebindingTime) }
        set { setSeconds(.rebindingTime, newValue) }
    }

    /// Client identifier: a type byte (1 for Ethernet) and the identifier.
    public var clientIdentifier: [UInt8]? {
        get { self[.clientIdentifier] }
        set { self[.clientIdentifier] = newValue }
    }

    /// Domain search list (RFC 3397), names compressed within the option.
    public var domainSearch: [DNSName] {
        get { self[.domainSearch].flatMap { try? Self.decodeDomainSearch($0) } ?? [] }
        set {
            guard !newValue.isEmpty else {
                self[.domainSearch] = nil
                return
            }
            var out: [UInt8] = []
            var compressor = DNSNameCompressor(base: 0)
            for name in newValue where (try? name.validate()) != nil {
                compressor.write(name, into: &out)
            }
            self[.domainSearch] = out
        }
    }

    /// Classless static routes (RFC 3442).
    public var classlessStaticRoutes: [DHCPRoute] {
        get { self[.classlessStaticRoute].flatMap { try? Self.decodeRoutes($0) } ?? [] }
        set {
            guard !newValue.isEmpty else {
                self[.classlessStaticRoute] = nil
                return
            }
            var out: [UInt8] = []
            for route in newValue {
                let width = Swift.min(Swift.max(route.prefixLength, 0), 32)
                out.append(UInt8(width))
                out.append(contentsOf: route.destination.octets.prefix((width + 7) / 8))
                route.router.append(to: &out)
            }
            self[.classlessStaticRoute] = out
        }
    }

    // MARK: Validation of the typed options

    /// Checks the shape of every option that has a typed accessor.
    func validate() throws(WireError) {
        for option in list {
            let count = option.data.count
            switch option.code {
            case .subnetMask, .requestedIPAddress, .serverIdentifier, .leaseTime, .renewalTime, .rebindingTime:
                guard count == 4 else { throw WireError(.badLength, .dhcp, "4-byte option") }
            case .router, .domainNameServer:
                guard count >= 4, count % 4 == 0 else { throw WireError(.badLength, .dhcp, "address list option") }
            case .interfaceMTU:
                guard count == 2 else { throw WireError(.badLength, .dhcp, "MTU option") }
            case .messageType:
                guard count == 1 else { throw WireError(.badLength, .dhcp, "message type option") }
                guard DHCPMessageType(rawValue: option.data[0]) != nil else {
                    throw WireError(.badValue, .dhcp, "message type")
                }
            case .hostName, .domainName, .parameterRequestList:
                guard count >= 1 else { throw WireError(.badLength, .dhcp, "empty option") }
            case .clientIdentifier:
                guard count >= 2 else { throw WireError(.badLength, .dhcp, "client identifier option") }
            case .domainSearch:
                _ = try Self.decodeDomainSearch(option.data)
            case .classlessStaticRoute:
                _ = try Self.decodeRoutes(option.data)
            default:
                break
            }
        }
    }

    static func decodeDomainSearch(_ data: [UInt8]) throws(WireError) -> [DNSName] {
        try withBytes(data) { (raw) throws(WireError) -> [DNSName] in
            var names: [DNSName] = []
            var offset = 0
            while offset < raw.count {
                names.append(try DNSName.read(from: raw, at: &offset))
            }
            return names
        }
    }

    static func decodeRoutes(_ data: [UInt8]) throws(WireError) -> [DHCPRoute] {
        var routes: [DHCPRoute] = []
        var offset = 0
        while offset < data.count {
            let width = Int(data[offset])
            guard width <= 32 else { throw WireError(.badValue, .dhcp, "route prefix length") }
            let significant = (width + 7) / 8
            guard offset + 1 + significant + 4 <= data.count else {
                throw WireError(.truncated, .dhcp, "classless static route")
            }
            var destination: UInt32 = 0
            for index in 0..<4 {
                destination = destination << 8 | UInt32(index < significant ? data[offset + 1 + index] : 0)
            }
            let routerAt = offset + 1 + significant
            let router = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(data[routerAt + $1]) }
            routes.append(DHCPRoute(destination: IPv4Address(rawValue: destination), prefixLength: width,
                                    router: IPv4Address(rawValue: router)))
            offset = routerAt + 4
        }
        return routes
    }

    // MARK: Helpers

    private func address(_ code: DHCPOptionCode) -> IPv4Address? {
        addresses(code).first
    }

    private func addresses(_ code: DHCPOptionCode) -> [IPv4Address] {
        guard let data = self[code], data.count % 4 == 0 else { return [] }
        return stride(from: 0, to: data.count, by: 4).map {
            IPv4Address(data[$0], data[$0 + 1], data[$0 + 2], data[$0 + 3])
        }
    }

    private mutating func setAddress(_ code: DHCPOptionCode, _ value: IPv4Address?) {
        self[code] = value?.octets
    }

    private mutating func setAddresses(_ code: DHCPOptionCode, _ values: [IPv4Address]) {
        self[code] = values.isEmpty ? nil : values.flatMap { $0.octets }
    }

    private func seconds(_ code: DHCPOptionCode) -> UInt32? {
        address(code)?.rawValue
    }

    private mutating func setSeconds(_ code: DHCPOptionCode, _ value: UInt32?) {
        self[code] = value.map { IPv4Address(rawValue: $0).octets }
    }

    private func text(_ code: DHCPOptionCode) -> String? {
        self[code].map { data in
            String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
