// Domain names in DNS wire format (RFC 1035 §3.1, §4.1.4), shared by DNS
// messages and the DHCP domain search option (RFC 3397).
//
// Reading follows compression pointers. A pointer must point strictly before
// the label that holds it, so a chain of pointers always moves backwards and
// ends; the whole name must fit in 255 bytes. Writing compresses against every
// suffix written before, compared case-insensitively.

/// A domain name as a list of labels (raw bytes, at most 63 each).
public struct DNSName: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var labels: [[UInt8]]

    public static let maximumLength = 255
    public static let maximumLabelLength = 63

    public init(labels: [[UInt8]]) {
        self.labels = labels
    }

    /// Splits dotted text into labels; a trailing dot is allowed. Labels that
    /// are too long are kept, and are rejected by `validate()` and on emit.
    public init(_ text: String) {
        labels = text.split(separator: ".", omittingEmptySubsequences: true).map { Array($0.utf8) }
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public static let root = DNSName(labels: [])

    /// Bytes the name takes uncompressed: each label with its length, plus the root.
    public var wireLength: Int { labels.reduce(1) { $0 + 1 + $1.count } }

    /// Checks label and name lengths.
    public func validate() throws(WireError) {
        guard labels.allSatisfy({ !$0.isEmpty && $0.count <= Self.maximumLabelLength }) else {
            throw WireError(.badLength, .dns, "label")
        }
        guard wireLength <= Self.maximumLength else { throw WireError(.badLength, .dns, "name") }
    }

    /// The name in lower case, for comparisons (DNS names are case-insensitive).
    public var lowercased: DNSName {
        DNSName(labels: labels.map { $0.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 } })
    }

    /// Whether `self` equals `other` or lies under it, ignoring case.
    public func isSubdomain(of other: DNSName) -> Bool {
        guard other.labels.count <= labels.count else { return false }
        return DNSName(labels: Array(labels.suffix(other.labels.count))).lowercased == other.lowercased
    }

    /// Presentation format, as dig prints it: dots between labels, a trailing
    /// dot, and `\.`, `\\` or `\DDD` for bytes that would be ambiguous.
    public var description: String {
        guard !labels.isEmpty else { return "." }
        return labels.map { label in
            label.map { byte -> String in
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "\\"): "\\" + String(UnicodeScalar(byte))
                case 0x21...0x7E: String(UnicodeScalar(byte))
                default: "\\" + String(repeating: "0", count: byte < 10 ? 2 : byte < 100 ? 1 : 0) + String(byte)
                }
            }.joined()
        }.joined(separator: ".") + "."
    }

    /// Reads a possibly compressed name at `offset` of `message`, and moves
    /// `offset` past the name's bytes at that place (not past any pointer target).
    public static func read(from message: UnsafeRawBufferPointer, at offset: inout Int) throws(WireError) -> DNSName {
        var labels: [[UInt8]] = []
        var position = offset
        var resumeAt: Int?
        var length = 1
        while true {
            guard position < message.count else { throw WireError(.truncated, .dns, "name") }
            let byte = message[position]
            switch byte & 0xC0 {
            case 0x00:
                let labelLength = Int(byte)
                if labelLength == 0 {
                    offset = resumeAt ?? position + 1
                    return DNSName(labels: labels)
                }
                guard position + 1 + labelLength <= message.count else {
                    throw WireError(.truncated, .dns, "label")
                }
                length += 1 + labelLength
                guard length <= maximumLength else { throw WireError(.badLength, .dns, "name") }
                labels.append(Array(message.slice(position + 1, position + 1 + labelLength)))
                position += 1 + labelLength
            case 0xC0:
                guard position + 1 < message.count else { throw WireError(.truncated, .dns, "pointer") }
                let target = Int(message.be16(position) & 0x3FFF)
                guard target < position else { throw WireError(.badValue, .dns, "forward pointer") }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
            default:
                throw WireError(.unsupported, .dns, "label type")
            }
        }
    }
}

/// Remembers where names were written so later names can point at them.
/// Suffixes match byte for byte: a name is never written as a pointer to
/// one that differs from it in case, whose spelling it would then take
/// (RFC 4343 asks for case to be kept; 0x20-randomising resolvers check it).
public struct DNSNameCompressor: Sendable {
    /// Suffix, as spelt → its offset from the message start.
    private var offsets: [DNSName: Int] = [:]
    /// Where offset 0 is in the output buffer.
    public let base: Int

    public init(base: Int) {
        self.base = base
    }

    /// Appends `name`, replacing its longest previously written suffix with a
    /// pointer when `compress` is set, and records its new suffixes.
    public mutating func write(_ name: DNSName, into out: inout [UInt8], compress: Bool = true) {
        for index in 0..<name.labels.count {
            let suffix = DNSName(labels: Array(name.labels[index...]))
            if compress, let target = offsets[suffix] {
                out.appendBE16(0xC000 | UInt16(target))
                return
            }
            let here = out.count - base
            if here <= 0x3FFF, offsets[suffix] == nil { offsets[suffix] = here }
            out.append(UInt8(truncatingIfNeeded: name.labels[index].count))
            out.append(contentsOf: name.labels[index])
        }
        out.append(0)
    }
}
