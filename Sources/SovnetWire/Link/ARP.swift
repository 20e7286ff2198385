// ARP for IPv4 over Ethernet (RFC 826): the only ARP a virtual Ethernet
// carries. Other hardware or protocol types parse as `unsupported`.

/// An ARP operation code.
public struct ARPOperation: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let request = ARPOperation(rawValue: 1)
    public static let reply = ARPOperation(rawValue: 2)
}

/// A checked view of an Ethernet/IPv4 ARP packet in borrowed bytes.
public struct ARPView {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 28

    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.length else { throw WireError(.truncated, .arp, "packet") }
        guard bytes.be16(0) == 1, bytes.be16(2) == EtherType.ipv4.rawValue else {
            throw WireError(.unsupported, .arp, "hardware or protocol type")
        }
        guard bytes[4] == 6, bytes[5] == 4 else { throw WireError(.badValue, .arp, "address lengths") }
        self.bytes = bytes
    }

    public var operation: ARPOperation { ARPOperation(rawValue: bytes.be16(6)) }
    public var senderMAC: MACAddress { MACAddress(bytes, at: 8) }
    public var senderIP: IPv4Address { IPv4Address(bytes, at: 14) }
    public var targetMAC: MACAddress { MACAddress(bytes, at: 18) }
    public var targetIP: IPv4Address { IPv4Address(bytes, at: 24) }
}

/// An Ethernet/IPv4 ARP packet as a value.
public struct ARPPacket: Hashable, Sendable {
    public var operation: ARPOperation
    public var senderMAC: MACAddress
    public var senderIP: IPv4Address
    public var targetMAC: MACAddress
    public var targetIP: IPv4Address

    public init(operation: ARPOperation, senderMAC: MACAddress, senderIP: IPv4Address,
                targetMAC: MACAddress, targetIP: IPv4Address) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    public init(_ view: ARPView) {
        self.init(operation: view.operation, senderMAC: view.senderMAC, senderIP: view.senderIP,
                  targetMAC: view.targetMAC, targetIP: view.targetIP)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ARPPacket {
        ARPPacket(try ARPView(bytes))
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> ARPPacket {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    /// Whether this is a gratuitous announcement (sender and target IP equal).
    public var isGratuitous: Bool { senderIP == targetIP }

    public var bufferLength: Int { ARPView.length }

    public func emit(into out: inout [UInt8]) {
        out.appendBE16(1)
        out.appendBE16(EtherType.ipv4.rawValue)
        out.append(6)
        out.append(4)
        out.appendBE16(operation.rawValue)
        senderMAC.append(to: &out)
        senderIP.append(to: &out)
        targetMAC.append(to: &out)
        targetIP.append(to: &out)
    }
}
