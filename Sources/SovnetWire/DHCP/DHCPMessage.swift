// DHCPv4 messages (RFC 2131 §2): the 236-byte BOOTP header, the magic cookie
// 99.130.83.99, then options.
//
// Parsing reads the options field and, when option 52 says so, the `file` and
// `sname` fields too (RFC 2131 §4.1); parsing stops at the END option or at the
// end of the bytes. Emitting writes options into the options field only, ends
// them with END and pads the message to the BOOTP minimum of 300 bytes.

/// The BOOTP operation.
public enum BOOTPOperation: UInt8, Sendable {
    case request = 1
    case reply = 2
}

/// A checked view of a DHCP message in borrowed bytes.
public struct DHCPView {
    public let bytes: UnsafeRawBufferPointer
    /// The fixed header and the magic cookie.
    public static let fixedLength = 240
    public static let magicCookie: UInt32 = 0x6382_5363

    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.fixedLength else { throw WireError(.truncated, .dhcp, "header") }
        guard bytes.be32(236) == Self.magicCookie else { throw WireError(.unsupported, .dhcp, "magic cookie") }
        guard BOOTPOperation(rawValue: bytes[0]) != nil else { throw WireError(.badValue, .dhcp, "op") }
        guard bytes[2] <= 16 else { throw WireError(.badLength, .dhcp, "hlen") }
        self.bytes = bytes
    }

    public var operation: BOOTPOperation { BOOTPOperation(rawValue: bytes[0]) ?? .request }
    public var hardwareType: UInt8 { bytes[1] }
    public var hardwareAddressLength: Int { Int(bytes[2]) }
    public var hops: UInt8 { bytes[3] }
    public var transactionID: UInt32 { bytes.be32(4) }
    public var seconds: UInt16 { bytes.be16(8) }
    public var flags: UInt16 { bytes.be16(10) }
    public var clientAddress: IPv4Address { IPv4Address(bytes, at: 12) }
    public var yourAddress: IPv4Address { IPv4Address(bytes, at: 16) }
    public var serverAddress: IPv4Address { IPv4Address(bytes, at: 20) }
    public var relayAddress: IPv4Address { IPv4Address(bytes, at: 24) }
    public var clientHardwareAddress: [UInt8] { Array(bytes.slice(28, 28 + hardwareAddressLength)) }
    public var serverNameField: UnsafeRawBufferPointer { bytes.slice(44, 108) }
    public var bootFileField: UnsafeRawBufferPointer { bytes.slice(108, 236) }
    public var optionsField: UnsafeRawBufferPointer { bytes.suffix(from: Self.fixedLength) }

    /// The message type, found by walking the options without allocating.
    public var messageType: DHCPMessageType? {
        var found: DHCPMessageType?
        try? Self.walkOptions(optionsField) { code, data in
            if code == .messageType, data.count == 1 { found = DHCPMessageType(rawValue: data[0]) }
        }
        return found
    }

    /// Calls `body` with each option of an options area, up to END.
    static func walkOptions(
        _ area: UnsafeRawBufferPointer, _ body: (DHCPOptionCode, UnsafeRawBufferPointer) -> Void
    ) throws(WireError) {
        var offset = 0
        while offset < area.count {
            let code = DHCPOptionCode(area[offset])
            if code == .end { return }
            if code == .pad {
                offset += 1
                continue
            }
            guard offset + 1 < area.count else { throw WireError(.truncated, .dhcp, "option length") }
            let end = offset + 2 + Int(area[offset + 1])
            guard end <= area.count else { throw WireError(.truncated, .dhcp, "option data") }
            body(code, area.slice(offset + 2, end))
            offset = end
        }
    }
}

/// A DHCP message as a value.
public struct DHCPMessage: Hashable, Sendable {
    public var operation: BOOTPOperation
    public var hardwareType: UInt8
    /// `chaddr`, cut to `hlen` bytes.
    public var clientHardwareAddress: [UInt8]
    public var hops: UInt8
    public var transactionID: UInt32
    public var seconds: UInt16
    public var flags: UInt16
    public var clientAddress: IPv4Address
    public var yourAddress: IPv4Address
    public var serverAddress: IPv4Address
    public var relayAddress: IPv4Address
    /// `sname`, up to its first NUL (empty when it carried options).
    public var serverName: [UInt8]
    /// `file`, up to its first NUL (empty when it carried options).
    public var bootFileName: [UInt8]
    public var options: DHCPOptions

    /// The BOOTP minimum message size (RFC 1542 §3.1.1).
    public static let minimumLength = 300
    /// The broadcast bit of `flags`.
    public static let broadcastFlag: UInt16 = 0x8000

    public init(operation: BOOTPOperation, transactionID: UInt32, clientMAC: MACAddress,
                options: DHCPOptions = DHCPOptions()) {
        self.operation = operation
        hardwareType = 1
        clientHardwareAddress = clientMAC.octets
        hops = 0
        self.transactionID = transactionID
        seconds = 0
        flags = 0
        clientAddress = .any
        yourAddress = .any
        serverAddress = .any
        relayAddress = .any
        serverName = []
        bootFileName = []
        self.options = options
    }

    /// The client's MAC address, when `chaddr` holds an Ethernet address.
    public var clientMAC: MACAddress? {
        guard hardwareType == 1, clientHardwareAddress.count == 6 else { return nil }
        let b = clientHardwareAddress
        return MACAddress(b[0], b[1], b[2], b[3], b[4], b[5])
    }

    public var messageType: DHCPMessageType? { options.messageType }

    /// Whether the client asked for replies to be broadcast.
    public var broadcast: Bool {
        get { flags & Self.broadcastFlag != 0 }
        set { flags = newValue ? flags | Self.broadcastFlag : flags & ~Self.broadcastFlag }
    }

    public init(_ view: DHCPView) throws(WireError) {
        operation = view.operation
        hardwareType = view.hardwareType
        clientHardwareAddress = view.clientHardwareAddress
        hops = view.hops
        transactionID = view.transactionID
        seconds = view.seconds
        flags = view.flags
        clientAddress = view.clientAddress
        yourAddress = view.yourAddress
        serverAddress = view.serverAddress
        relayAddress = view.relayAddress
        var options = DHCPOptions()
        try DHCPView.walkOptions(view.optionsField) { options.join($0, $1) }
        let overload = options[.optionOverload].flatMap { $0.count == 1 ? $0[0] : nil } ?? 0
        if overload & 1 != 0 {
            try DHCPView.walkOptions(view.bootFileField) { options.join($0, $1) }
        }
        if overload & 2 != 0 {
            try DHCPView.walkOptions(view.serverNameField) { options.join($0, $1) }
        }
        options[.optionOverload] = nil
        try options.validate()
        self.options = options
        serverName = overload & 2 != 0 ? [] : Array(view.serverNameField.prefix { $0 != 0 })
        bootFileName = overload & 1 != 0 ? [] : Array(view.bootFileField.prefix { $0 != 0 })
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DHCPMessage {
        try DHCPMessage(try DHCPView(bytes))
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> DHCPMessage {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    /// Appends the message, zero-padded to at least `minimumLength` bytes.
    public func emit(into out: inout [UInt8], minimumLength: Int = DHCPMessage.minimumLength) throws(WireError) {
        guard clientHardwareAddress.count <= 16 else { throw WireError(.badLength, .dhcp, "chaddr") }
        guard serverName.count < 64 else { throw WireError(.badLength, .dhcp, "sname") }
        guard bootFileName.count < 128 else { throw WireError(.badLength, .dhcp, "file") }
        let start = out.count
        out.append(operation.rawValue)
        out.append(hardwareType)
        out.append(UInt8(clientHardwareAddress.count))
        out.append(hops)
        out.appendBE32(transactionID)
        out.appendBE16(seconds)
        out.appendBE16(flags)
        for address in [clientAddress, yourAddress, serverAddress, relayAddress] {
            address.append(to: &out)
        }
        out.append(contentsOf: clientHardwareAddress)
        out.appendZeros(16 - clientHardwareAddress.count)
        out.append(contentsOf: serverName)
        out.appendZeros(64 - serverName.count)
        out.append(contentsOf: bootFileName)
        out.appendZeros(128 - bootFileName.count)
        out.appendBE32(DHCPView.magicCookie)
        for option in options where option.code != .pad && option.code != .end {
            var rest = option.data[...]
            repeat {
                let piece = rest.prefix(255)
                out.append(option.code.rawValue)
                out.append(UInt8(piece.count))
                out.append(contentsOf: piece)
                rest = rest.dropFirst(piece.count)
            } while !rest.isEmpty
        }
        out.append(DHCPOptionCode.end.rawValue)
        out.appendZeros(start + minimumLength - out.count)
    }

    /// The message as bytes.
    public func bytes(minimumLength: Int = DHCPMessage.minimumLength) throws(WireError) -> [UInt8] {
        var out: [UInt8] = []
        try emit(into: &out, minimumLength: minimumLength)
        return out
    }
}
