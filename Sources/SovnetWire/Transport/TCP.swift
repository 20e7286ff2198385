// TCP segment headers (RFC 9293) with the options a user-mode stack needs:
// MSS (RFC 9293 §3.7.1), window scale and timestamps (RFC 7323), SACK and
// SACK-permitted (RFC 2018).
//
// Options are walked once on parse; a length byte below 2 or past the end of
// the header, or a known option with the wrong length, is an error. Unknown
// options are skipped. The header value holds options as plain fields, so a
// parse allocates nothing.

/// The control bits of a TCP header.
public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue & 0x1FF }

    public static let fin = TCPFlags(rawValue: 0x001)
    public static let syn = TCPFlags(rawValue: 0x002)
    public static let rst = TCPFlags(rawValue: 0x004)
    public static let psh = TCPFlags(rawValue: 0x008)
    public static let ack = TCPFlags(rawValue: 0x010)
    public static let urg = TCPFlags(rawValue: 0x020)
    public static let ece = TCPFlags(rawValue: 0x040)
    public static let cwr = TCPFlags(rawValue: 0x080)
    public static let ns = TCPFlags(rawValue: 0x100)

    /// tcpdump's letters: `S` SYN, `F` FIN, `R` RST, `P` PSH, `.` ACK, `U` URG, `E` ECE, `W` CWR.
    public var description: String {
        var text = ""
        if contains(.syn) { text += "S" }
        if contains(.fin) { text += "F" }
        if contains(.rst) { text += "R" }
        if contains(.psh) { text += "P" }
        if contains(.urg) { text += "U" }
        if contains(.ece) { text += "E" }
        if contains(.cwr) { text += "W" }
        if contains(.ack) { text += "." }
        return text.isEmpty ? "none" : text
    }
}

/// The options of a TCP header this stack understands.
public struct TCPOptions: Hashable, Sendable {
    public var maximumSegmentSize: UInt16?
    public var windowScale: UInt8?
    public var sackPermitted: Bool
    /// Timestamp value and echo reply.
    public var timestamps: (value: UInt32, echoReply: UInt32)? {
        get { timestampValue.map { ($0, timestampEchoReply) } }
        set {
            timestampValue = newValue?.value
            timestampEchoReply = newValue?.echoReply ?? 0
        }
    }
    /// Up to four SACK blocks, each a left and right edge.
    public var sackBlocks: SACKBlocks

    private var timestampValue: UInt32?
    private var timestampEchoReply: UInt32 = 0

    public init(maximumSegmentSize: UInt16? = nil, windowScale: UInt8? = nil, sackPermitted: Bool = false,
                timestamps: (value: UInt32, echoReply: UInt32)? = nil, sackBlocks: SACKBlocks = SACKBlocks()) {
        self.maximumSegmentSize = maximumSegmentSize
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.sackBlocks = sackBlocks
        self.timestamps = timestamps
    }

    static let endOfList: UInt8 = 0
    static let noOperation: UInt8 = 1
    static let mssKind: UInt8 = 2
    static let windowScaleKind: UInt8 = 3
    static let sackPermittedKind: UInt8 = 4
    static let sackKind: UInt8 = 5
    static let timestampsKind: UInt8 = 8

    /// Calls `body` with each option's kind and value, in order: no-operation
    /// and end of list with no value, and nothing after the end of list.
    static func walk(_ area: UnsafeRawBufferPointer,
                     _ body: (UInt8, UnsafeRawBufferPointer) throws(WireError) -> Void) throws(WireError) {
        var offset = 0
        while offset < area.count {
            let kind = area[offset]
            if kind == Self.endOfList || kind == Self.noOperation {
                try body(kind, area.slice(offset, offset))
                if kind == Self.endOfList { return }
                offset += 1
                continue
            }
            guard offset + 1 < area.count else { throw WireError(.truncated, .tcp, "option length") }
            let length = Int(area[offset + 1])
            guard length >= 2, offset + length <= area.count else {
                throw WireError(.badLength, .tcp, "option length")
            }
            try body(kind, area.slice(offset + 2, offset + length))
            offset += length
        }
    }

    /// Reads the options area of a header.
    init(parsing area: UnsafeRawBufferPointer) throws(WireError) {
        self.init()
        var options = self
        try Self.walk(area) { (kind, value) throws(WireError) in
            let length = value.count + 2
            switch kind {
            case Self.mssKind:
                guard length == 4 else { throw WireError(.badLength, .tcp, "MSS option") }
                options.maximumSegmentSize = value.be16(0)
            case Self.windowScaleKind:
                guard length == 3 else { throw WireError(.badLength, .tcp, "window scale option") }
                options.windowScale = value[0]
            case Self.sackPermittedKind:
                guard length == 2 else { throw WireError(.badLength, .tcp, "SACK-permitted option") }
                options.sackPermitted = true
            case Self.sackKind:
                guard (length - 2) % 8 == 0, length >= 10 else { throw WireError(.badLength, .tcp, "SACK option") }
                var blocks = SACKBlocks()
                for index in stride(from: 0, to: value.count, by: 8) {
                    blocks.append(left: value.be32(index), right: value.be32(index + 4))
                }
                options.sackBlocks = blocks
            case Self.timestampsKind:
                guard length == 10 else { throw WireError(.badLength, .tcp, "timestamps option") }
                options.timestamps = (value.be32(0), value.be32(4))
            default:
                break
            }
        }
        self = options
    }

    /// Bytes the options take; always a multiple of 4.
    public var bufferLength: Int {
        var length = maximumSegmentSize == nil ? 0 : 4
        if timestampValue != nil { length += 12 } else if sackPermitted { length += 4 }
        if windowScale != nil { length += 4 }
        if sackBlocks.count > 0 { length += 4 + 8 * sackBlocks.count }
        return length
    }

    /// Appends the options in the layout Linux uses, NOPs keeping each
    /// multi-byte option on a 4-byte boundary: MSS; SACK-permitted and
    /// timestamps; window scale; SACK blocks.
    func emit(into out: inout [UInt8]) {
        if let mss = maximumSegmentSize {
            out.append(contentsOf: [Self.mssKind, 4])
            out.appendBE16(mss)
        }
        if let value = timestampValue {
            if sackPermitted {
                out.append(contentsOf: [Self.sackPermittedKind, 2])
            } else {
                out.append(contentsOf: [Self.noOperation, Self.noOperation])
            }
            out.append(contentsOf: [Self.timestampsKind, 10])
            out.appendBE32(value)
            out.appendBE32(timestampEchoReply)
        } else if sackPermitted {
            out.append(contentsOf: [Self.noOperation, Self.noOperation, Self.sackPermittedKind, 2])
        }
        if let shift = windowScale {
            out.append(contentsOf: [Self.noOperation, Self.windowScaleKind, 3, shift])
        }
        if sackBlocks.count > 0 {
            out.append(contentsOf: [Self.noOperation, Self.noOperation, Self.sackKind, UInt8(2 + 8 * sackBlocks.count)])
            for block in sackBlocks {
                out.appendBE32(block.left)
                out.appendBE32(block.right)
            }
        }
    }

    public static func == (a: TCPOptions, b: TCPOptions) -> Bool {
        a.maximumSegmentSize == b.maximumSegmentSize && a.windowScale == b.windowScale
            && a.sackPermitted == b.sackPermitted && a.timestampValue == b.timestampValue
            && a.timestampEchoReply == b.timestampEchoReply && a.sackBlocks == b.sackBlocks
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(maximumSegmentSize)
        hasher.combine(windowScale)
        hasher.combine(sackPermitted)
        hasher.combine(timestampValue)
        hasher.combine(timestampEchoReply)
        hasher.combine(sackBlocks)
    }
}

/// At most four SACK blocks, stored inline so parsing allocates nothing.
public struct SACKBlocks: Hashable, Sendable, Sequence {
    public struct Block: Hashable, Sendable {
        public var left: UInt32
        public var right: UInt32
    }

    public static let capacity = 4
    private var storage: (Block, Block, Block, Block) = (
        Block(left: 0, right: 0), Block(left: 0, right: 0), Block(left: 0, right: 0), Block(left: 0, right: 0))
    public private(set) var count = 0

    public init() {}

    /// Adds a block; blocks past the fourth are dropped, as no header has room for them.
    public mutating func append(left: UInt32, right: UInt32) {
        let block = Block(left: left, right: right)
        switch count {
        case 0: storage.0 = block
        case 1: storage.1 = block
        case 2: storage.2 = block
        case 3: storage.3 = block
        default: return
        }
        count += 1
    }

    public subscript(index: Int) -> Block {
        switch index {
        case 0: storage.0
        case 1: storage.1
        case 2: storage.2
        default: storage.3
        }
    }

    public func makeIterator() -> some IteratorProtocol<Block> {
        (0..<count).lazy.map { self[$0] }.makeIterator()
    }

    public static func == (a: SACKBlocks, b: SACKBlocks) -> Bool {
        a.count == b.count && (0..<a.count).allSatisfy { a[$0] == b[$0] }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for block in self { hasher.combine(block) }
    }
}

/// One TCP option as it appears in a header.
public enum TCPOptionItem: Sendable {
    case endOfList
    case noOperation
    case maximumSegmentSize(UInt16)
    case windowScale(UInt8)
    case sackPermitted
    /// SACK blocks: left and right edges.
    case sack([(UInt32, UInt32)])
    case timestamps(value: UInt32, echoReply: UInt32)
    /// An option this code does not know, or a known one with the wrong length.
    case other(kind: UInt8, value: [UInt8])
}

/// A checked view of a TCP segment in borrowed bytes.
public struct TCPView {
    public let bytes: UnsafeRawBufferPointer
    public static let minimumHeaderLength = 20

    /// Checks lengths only.
    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.minimumHeaderLength else { throw WireError(.truncated, .tcp, "header") }
        let headerLength = Int(bytes[12] >> 4) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw WireError(.badLength, .tcp, "data offset") }
        guard headerLength <= bytes.count else { throw WireError(.truncated, .tcp, "options") }
        self.bytes = bytes
    }

    /// Checks lengths and the checksum over the IPv4 pseudo-header.
    public init(_ bytes: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address) throws(WireError) {
        try self.init(bytes, source: .v4(source), destination: .v4(destination))
    }

    /// Checks lengths and the checksum over the IPv4 or IPv6 pseudo-header.
    public init(_ bytes: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress) throws(WireError) {
        try self.init(bytes)
        var sum = InternetChecksum()
        sum.addPseudoHeader(source: source, destination: destination, protocol: .tcp, length: bytes.count)
        sum.add(bytes)
        guard sum.value == 0 else { throw WireError(.badChecksum, .tcp, "checksum") }
    }

    public var sourcePort: UInt16 { bytes.be16(0) }
    public var destinationPort: UInt16 { bytes.be16(2) }
    public var sequenceNumber: UInt32 { bytes.be32(4) }
    public var acknowledgmentNumber: UInt32 { bytes.be32(8) }
    public var headerLength: Int { Int(bytes[12] >> 4) * 4 }
    public var flags: TCPFlags { TCPFlags(rawValue: bytes.be16(12)) }
    public var window: UInt16 { bytes.be16(14) }
    public var checksum: UInt16 { bytes.be16(16) }
    public var urgentPointer: UInt16 { bytes.be16(18) }
    public var optionsArea: UnsafeRawBufferPointer { bytes.slice(Self.minimumHeaderLength, headerLength) }
    public var payload: UnsafeRawBufferPointer { bytes.suffix(from: headerLength) }

    /// The options, parsed; throws on a malformed option.
    public func options() throws(WireError) -> TCPOptions {
        try TCPOptions(parsing: optionsArea)
    }

    /// Every option as it appears, in order (no-operations included).
    public func optionList() throws(WireError) -> [TCPOptionItem] {
        var items: [TCPOptionItem] = []
        try TCPOptions.walk(optionsArea) { (kind, value) throws(WireError) in
            let item: TCPOptionItem = switch (kind, value.count) {
            case (TCPOptions.endOfList, _): .endOfList
            case (TCPOptions.noOperation, _): .noOperation
            case (TCPOptions.mssKind, 2): .maximumSegmentSize(value.be16(0))
            case (TCPOptions.windowScaleKind, 1): .windowScale(value[0])
            case (TCPOptions.sackPermittedKind, 0): .sackPermitted
            case (TCPOptions.sackKind, let count) where count % 8 == 0 && count > 0:
                .sack(stride(from: 0, to: count, by: 8).map { (value.be32($0), value.be32($0 + 4)) })
            case (TCPOptions.timestampsKind, 8): .timestamps(value: value.be32(0), echoReply: value.be32(4))
            default: .other(kind: kind, value: Array(value))
            }
            items.append(item)
        }
        return items
    }
}

/// A TCP header as a value; the payload travels separately.
public struct TCPHeader: Hashable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequenceNumber: UInt32
    public var acknowledgmentNumber: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var urgentPointer: UInt16
    public var options: TCPOptions

    public init(sourcePort: UInt16, destinationPort: UInt16, sequenceNumber: UInt32,
                acknowledgmentNumber: UInt32 = 0, flags: TCPFlags, window: UInt16,
                urgentPointer: UInt16 = 0, options: TCPOptions = TCPOptions()) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.urgentPointer = urgentPointer
        self.options = options
    }

    public init(_ view: TCPView) throws(WireError) {
        self.init(sourcePort: view.sourcePort, destinationPort: view.destinationPort,
                  sequenceNumber: view.sequenceNumber, acknowledgmentNumber: view.acknowledgmentNumber,
                  flags: view.flags, window: view.window, urgentPointer: view.urgentPointer,
                  options: try view.options())
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> TCPHeader {
        try TCPHeader(try TCPView(bytes))
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> TCPHeader {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    public var bufferLength: Int { TCPView.minimumHeaderLength + options.bufferLength }

    /// Appends the header, its options and `payload`, with the checksum over
    /// the pseudo-header, header and payload (or, `.partial`, the
    /// pseudo-header's sum for the receiver to complete).
    public func emit(payload: UnsafeRawBufferPointer, source: IPv4Address, destination: IPv4Address,
                     checksum: ChecksumMode = .full, into out: inout [UInt8]) {
        emit(payload: payload, source: .v4(source), destination: .v4(destination), checksum: checksum, into: &out)
    }

    /// As above, over either family's pseudo-header.
    public func emit(payload: UnsafeRawBufferPointer, source: IPAddress, destination: IPAddress,
                     checksum: ChecksumMode = .full, into out: inout [UInt8]) {
        let start = out.count
        out.appendBE16(sourcePort)
        out.appendBE16(destinationPort)
        out.appendBE32(sequenceNumber)
        out.appendBE32(acknowledgmentNumber)
        out.appendBE16(UInt16(bufferLength / 4) << 12 | flags.rawValue)
        out.appendBE16(window)
        out.appendBE16(0)
        out.appendBE16(urgentPointer)
        options.emit(into: &out)
        out.append(contentsOf: payload)
        var sum = InternetChecksum()
        sum.addPseudoHeader(source: source, destination: destination, protocol: .tcp, length: out.count - start)
        switch checksum {
        case .full:
            out.withUnsafeBytes { sum.add($0.suffix(from: start)) }
            out.storeBE16(sum.value, at: start + 16)
        case .partial:
            out.storeBE16(sum.sum16, at: start + 16)
        }
    }

    public func emit(payload: [UInt8], source: IPv4Address, destination: IPv4Address, into out: inout [UInt8]) {
        payload.withUnsafeBytes { emit(payload: $0, source: source, destination: destination, into: &out) }
    }

    public func emit(payload: [UInt8], source: IPAddress, destination: IPAddress, into out: inout [UInt8]) {
        payload.withUnsafeBytes { emit(payload: $0, source: source, destination: destination, into: &out) }
    }
}
