// ICMPv4 messages (RFC 792).
//
// The header value keeps type, code and the four "rest of header" bytes,
// whose meaning depends on the type (identifier and sequence for echo, the
// next-hop MTU for "fragmentation needed"). The body (echo data, or the
// quoted datagram of an error) is read from the view, so parsing allocates
// nothing.

/// An ICMPv4 message type.
public struct ICMPv4Type: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let echoReply = ICMPv4Type(rawValue: 0)
    public static let destinationUnreachable = ICMPv4Type(rawValue: 3)
    public static let redirect = ICMPv4Type(rawValue: 5)
    public static let echoRequest = ICMPv4Type(rawValue: 8)
    public static let timeExceeded = ICMPv4Type(rawValue: 11)
    public static let parameterProblem = ICMPv4Type(rawValue: 12)

    /// Whether the body quotes the datagram that caused an error.
    public var isError: Bool {
        self == .destinationUnreachable || self == .redirect || self == .timeExceeded
            || self == .parameterProblem
    }
}

/// Codes of `destinationUnreachable`.
public enum ICMPv4UnreachableCode {
    public static let network: UInt8 = 0
    public static let host: UInt8 = 1
    public static let `protocol`: UInt8 = 2
    public static let port: UInt8 = 3
    public static let fragmentationNeeded: UInt8 = 4
    public static let administrativelyProhibited: UInt8 = 13
}

/// A checked view of an ICMPv4 message in borrowed bytes.
public struct ICMPv4View {
    public let bytes: UnsafeRawBufferPointer
    public static let headerLength = 8

    public init(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw WireError(.truncated, .icmpv4, "header") }
        if verifyChecksum, InternetChecksum.of(bytes) != 0 {
            throw WireError(.badChecksum, .icmpv4, "checksum")
        }
        self.bytes = bytes
    }

    public var type: ICMPv4Type { ICMPv4Type(rawValue: bytes[0]) }
    public var code: UInt8 { bytes[1] }
    public var checksum: UInt16 { bytes.be16(2) }
    public var restOfHeader: UInt32 { bytes.be32(4) }
    public var identifier: UInt16 { bytes.be16(4) }
    public var sequence: UInt16 { bytes.be16(6) }
    /// Echo data, or the quoted IP header and first bytes of an error.
    public var body: UnsafeRawBufferPointer { bytes.suffix(from: Self.headerLength) }
}

/// An ICMPv4 header as a value; the body travels separately.
public struct ICMPv4Header: Hashable, Sendable {
    public var type: ICMPv4Type
    public var code: UInt8
    /// Identifier and sequence for echo; unused, MTU or pointer for errors.
    public var restOfHeader: UInt32

    public init(type: ICMPv4Type, code: UInt8 = 0, restOfHeader: UInt32 = 0) {
        self.type = type
        self.code = code
        self.restOfHeader = restOfHeader
    }

    /// An echo request or reply header.
    public static func echo(_ type: ICMPv4Type, identifier: UInt16, sequence: UInt16) -> ICMPv4Header {
        ICMPv4Header(type: type, restOfHeader: UInt32(identifier) << 16 | UInt32(sequence))
    }

    public init(_ view: ICMPv4View) {
        self.init(type: view.type, code: view.code, restOfHeader: view.restOfHeader)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, verifyChecksum: Bool = true) throws(WireError) -> ICMPv4Header {
        ICMPv4Header(try ICMPv4View(bytes, verifyChecksum: verifyChecksum))
    }

    public static func parse(_ bytes: [UInt8], verifyChecksum: Bool = true) throws(WireError) -> ICMPv4Header {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw, verifyChecksum: verifyChecksum) }
    }

    public var identifier: UInt16 { UInt16(truncatingIfNeeded: restOfHeader >> 16) }
    public var sequence: UInt16 { UInt16(truncatingIfNeeded: restOfHeader) }

    /// Appends the header and `body`, with the checksum over both.
    public func emit(body: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let start = out.count
        out.append(type.rawValue)
        out.append(code)
        out.appendBE16(0)
        out.appendBE32(restOfHeader)
        out.append(contentsOf: body)
        let checksum = out.withUnsafeBytes { InternetChecksum.of($0.suffix(from: start)) }
        out.storeBE16(checksum, at: start + 2)
    }

    public func emit(body: [UInt8], into out: inout [UInt8]) {
        body.withUnsafeBytes { emit(body: $0, into: &out) }
    }
}
