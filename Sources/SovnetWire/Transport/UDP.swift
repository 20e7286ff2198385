// UDP datagrams (RFC 768) over IPv4 and IPv6.
//
// The length field must cover the 8-byte header and fit in the IP payload;
// bytes beyond it are ignored. Over IPv4 a zero checksum means "none" and is
// accepted; over IPv6 it is refused (RFC 8200 §8.1). Otherwise the checksum
// is verified against the pseudo-header when the caller supplies the addresses.

/// A checked view of a UDP datagram in borrowed bytes.
public struct UDPView {
    /// The datagram, cut to its length field.
    public let bytes: UnsafeRawBufferPointer
    public static let headerLength = 8

    /// Checks lengths only.
    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw WireError(.truncated, .udp, "header") }
        let length = Int(bytes.be16(4))
        guard length >= Self.headerLength else { throw WireError(.badLength, .udp, "length") }
        guard length <= bytes.count else { throw WireError(.truncated, .udp, "payload") }
        self.bytes = bytes.slice(0, length)
    }

    /// Checks lengths and, unless it is zero, the checksum.
    public init(_ bytes: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address) throws(WireError) {
        try self.init(bytes, source: .v4(source), destination: .v4(destination))
    }

    /// Checks lengths and the checksum, which over IPv6 is never optional
    /// (RFC 8200 §8.1): a zero one there is refused.
    public init(_ bytes: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress) throws(WireError) {
        try self.init(bytes)
        if checksum == 0, source.isIPv6 { throw WireError(.badChecksum, .udp, "zero checksum over IPv6") }
        if checksum != 0 {
            var sum = InternetChecksum()
            sum.addPseudoHeader(source: source, destination: destination, protocol: .udp, length: self.bytes.count)
            sum.add(self.bytes)
            guard sum.value == 0 else { throw WireError(.badChecksum, .udp, "checksum") }
        }
    }

    public var sourcePort: UInt16 { bytes.be16(0) }
    public var destinationPort: UInt16 { bytes.be16(2) }
    public var length: Int { Int(bytes.be16(4)) }
    public var checksum: UInt16 { bytes.be16(6) }
    public var payload: UnsafeRawBufferPointer { bytes.suffix(from: Self.headerLength) }
}

/// A UDP header as a value; the payload travels separately.
public struct UDPHeader: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16

    public init(sourcePort: UInt16, destinationPort: UInt16) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    public init(_ view: UDPView) {
        self.init(sourcePort: view.sourcePort, destinationPort: view.destinationPort)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> UDPHeader {
        UDPHeader(try UDPView(bytes))
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> UDPHeader {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    public var bufferLength: Int { UDPView.headerLength }

    /// Appends the header and `payload`, with the checksum over the
    /// pseudo-header, header and payload (0 is sent as 0xFFFF).
    public func emit(payload: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address,
                     into out: inout [UInt8]) {
        emit(payload: payload, source: .v4(source), destination: .v4(destination), into: &out)
    }

    /// As above, over either family's pseudo-header.
    public func emit(payload: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress, into out: inout [UInt8]) {
        let start = out.count
        let length = UDPView.headerLength + payload.count
        out.appendBE16(sourcePort)
        out.appendBE16(destinationPort)
        out.appendBE16(UInt16(truncatingIfNeeded: length))
        out.appendBE16(0)
        out.append(contentsOf: payload)
        var sum = InternetChecksum()
        sum.addPseudoHeader(source: source, destination: destination, protocol: .udp, length: length)
        out.withUnsafeBytes { sum.add($0.suffix(from: start)) }
        let checksum = sum.value
        out.storeBE16(checksum == 0 ? 0xFFFF : checksum, at: start + 6)
    }

    public func emit(payload: [UInt8], source: IPv4Address, destination: IPv4Address, into out: inout [UInt8]) {
        payload.withUnsafeBytes { emit(payload: $0, source: source, destination: destination, into: &out) }
    }

    public func emit(payload: [UInt8], source: IPAddress, destination: IPAddress, into out: inout [UInt8]) {
        payload.withUnsafeBytes { emit(payload: $0, source: source, destination: destination, into: &out) }
    }
}
