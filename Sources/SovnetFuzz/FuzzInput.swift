// A fuzzer's input read as a script: bytes taken from the front as small
// numbers (which event comes next, how far the clock moves) and as
// length-prefixed chunks (a frame, a datagram, a read's bytes). Running out
// is never an error: a number reads as 0 and a chunk as empty, so every
// input, however short, is a valid script.

/// Reads a fuzzer's bytes front to back.
public struct FuzzInput {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Whether every byte has been read.
    public var isAtEnd: Bool { offset >= bytes.count }

    /// The next byte, or 0 past the end.
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// The next two bytes, big-endian.
    public mutating func uint16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    /// A chunk: a two-byte big-endian length, then that many bytes (fewer at the end).
    public mutating func chunk() -> [UInt8] {
        let length = Int(uint16())
        let end = min(bytes.count, offset + length)
        defer { offset = end }
        return offset < end ? Array(bytes[offset..<end]) : []
    }

    /// Every byte not read yet.
    public mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return offset < bytes.count ? Array(bytes[offset...]) : []
    }

    /// `chunk`'s encoding of `bytes` (cut to 65,535), for making seeds.
    public static func chunk(_ bytes: [UInt8]) -> [UInt8] {
        let kept = bytes.prefix(Int(UInt16.max))
        return [UInt8(kept.count >> 8), UInt8(kept.count & 0xFF)] + kept
    }
}

/// A property every input must keep; a violation stops the fuzzer as a crash would.
@inline(__always)
func expect(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant broken: \(message())") }
}
