// DNS messages (RFC 1035 §4.1): a 12-byte header, then the question, answer,
// authority and additional sections. The same format travels over UDP and,
// behind a 2-byte length, over TCP (RFC 7766); framing is the caller's job.
//
// Section counts are only trusted as far as the bytes go: each entry is read
// with bounds checks, so a count that lies gives `truncated`, never a trap.

/// The flag bits and codes of a DNS header.
public struct DNSFlags: Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    private func bit(_ shift: UInt16) -> Bool { rawValue >> shift & 1 == 1 }
    private mutating func set(_ shift: UInt16, _ on: Bool) {
        rawValue = on ? rawValue | 1 << shift : rawValue & ~(1 << shift)
    }

    /// Set in responses.
    public var isResponse: Bool { get { bit(15) } set { set(15, newValue) } }
    public var opcode: UInt8 {
        get { UInt8(truncatingIfNeeded: rawValue >> 11 & 0xF) }
        set { rawValue = rawValue & ~(0xF << 11) | UInt16(newValue & 0xF) << 11 }
    }
    public var authoritative: Bool { get { bit(10) } set { set(10, newValue) } }
    public var truncated: Bool { get { bit(9) } set { set(9, newValue) } }
    public var recursionDesired: Bool { get { bit(8) } set { set(8, newValue) } }
    public var recursionAvailable: Bool { get { bit(7) } set { set(7, newValue) } }
    public var authenticData: Bool { get { bit(5) } set { set(5, newValue) } }
    public var checkingDisabled: Bool { get { bit(4) } set { set(4, newValue) } }
    public var responseCode: DNSResponseCode {
        get { DNSResponseCode(rawValue: UInt8(rawValue & 0xF)) }
        set { rawValue = rawValue & ~0xF | UInt16(newValue.rawValue & 0xF) }
    }
}

/// A DNS RCODE.
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formatError = DNSResponseCode(rawValue: 1)
    public static let serverFailure = DNSResponseCode(rawValue: 2)
    public static let nameError = DNSResponseCode(rawValue: 3)
    public static let notImplemented = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)

    public var description: String {
        ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"].dropFirst(Int(rawValue)).first
            ?? "RCODE\(rawValue)"
    }
}

/// A checked view of a DNS message header in borrowed bytes, for a quick
/// look (ID, flags, counts) without reading the sections.
public struct DNSView {
    public let bytes: UnsafeRawBufferPointer
    public static let headerLength = 12

    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw WireError(.truncated, .dns, "header") }
        self.bytes = bytes
    }

    public var id: UInt16 { bytes.be16(0) }
    public var flags: DNSFlags { DNSFlags(rawValue: bytes.be16(2)) }
    public var questionCount: Int { Int(bytes.be16(4)) }
    public var answerCount: Int { Int(bytes.be16(6)) }
    public var authorityCount: Int { Int(bytes.be16(8)) }
    public var additionalCount: Int { Int(bytes.be16(10)) }

    /// The first question, read without the rest of the message.
    public func firstQuestion() throws(WireError) -> DNSQuestion? {
        guard questionCount > 0 else { return nil }
        var offset = Self.headerLength
        return try DNSMessage.readQuestion(from: bytes, at: &offset)
    }
}

/// A whole DNS message as a value.
public struct DNSMessage: Hashable, Sendable {
    public var id: UInt16
    public var flags: DNSFlags
    public var questions: [DNSQuestion]
    public var answers: [DNSResourceRecord]
    public var authorities: [DNSResourceRecord]
    public var additionals: [DNSResourceRecord]

    public init(id: UInt16, flags: DNSFlags = DNSFlags(rawValue: 0), questions: [DNSQuestion] = [],
                answers: [DNSResourceRecord] = [], authorities: [DNSResourceRecord] = [],
                additionals: [DNSResourceRecord] = []) {
        self.id = id
        self.flags = flags
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> DNSMessage {
        let view = try DNSView(bytes)
        var offset = DNSView.headerLength
        var message = DNSMessage(id: view.id, flags: view.flags)
        for _ in 0..<view.questionCount {
            message.questions.append(try readQuestion(from: bytes, at: &offset))
        }
        for _ in 0..<view.answerCount {
            message.answers.append(try DNSResourceRecord.read(from: bytes, at: &offset))
        }
        for _ in 0..<view.authorityCount {
            message.authorities.append(try DNSResourceRecord.read(from: bytes, at: &offset))
        }
        for _ in 0..<view.additionalCount {
            message.additionals.append(try DNSResourceRecord.read(from: bytes, at: &offset))
        }
        return message
    }

    public static func parse(_ bytes: [UInt8]) throws(WireError) -> DNSMessage {
        try withBytes(bytes) { (raw) throws(WireError) in try parse(raw) }
    }

    static func readQuestion(from bytes: UnsafeRawBufferPointer, at offset: inout Int) throws(WireError) -> DNSQuestion {
        let name = try DNSName.read(from: bytes, at: &offset)
        guard offset + 4 <= bytes.count else { throw WireError(.truncated, .dns, "question") }
        let question = DNSQuestion(name: name, type: DNSRecordType(rawValue: bytes.be16(offset)),
                                   class: DNSClass(rawValue: bytes.be16(offset + 2)))
        offset += 4
        return question
    }

    /// The EDNS OPT record of the additional section, if any (RFC 6891).
    public var ednsRecord: DNSResourceRecord? { additionals.first { $0.type == .opt } }

    /// Appends the message with name compression.
    public func emit(into out: inout [UInt8]) throws(WireError) {
        var compressor = DNSNameCompressor(base: out.count)
        for count in [questions.count, answers.count, authorities.count, additionals.count] where count > 0xFFFF {
            throw WireError(.badLength, .dns, "section count")
        }
        out.appendBE16(id)
        out.appendBE16(flags.rawValue)
        out.appendBE16(UInt16(questions.count))
        out.appendBE16(UInt16(answers.count))
        out.appendBE16(UInt16(authorities.count))
        out.appendBE16(UInt16(additionals.count))
        for question in questions {
            try question.name.validate()
            compressor.write(question.name, into: &out)
            out.appendBE16(question.type.rawValue)
            out.appendBE16(question.class.rawValue)
        }
        for record in answers { try record.emit(into: &out, compressor: &compressor) }
        for record in authorities { try record.emit(into: &out, compressor: &compressor) }
        for record in additionals { try record.emit(into: &out, compressor: &compressor) }
    }

    /// The message as bytes.
    public func bytes() throws(WireError) -> [UInt8] {
        var out: [UInt8] = []
        try emit(into: &out)
        return out
    }
}
