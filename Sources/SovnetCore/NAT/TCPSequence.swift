/// TCP sequence-number arithmetic (RFC 793 §3.3): 32-bit values compared
/// modulo 2³², so a comparison holds across wrap-around.
enum TCPSequence {
    /// a < b in sequence space.
    @inline(__always)
    static func less(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }

    /// a ≤ b in sequence space.
    @inline(__always)
    static func lessOrEqual(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) <= 0 }

    /// How far b is ahead of a (b - a), for b at or after a.
    @inline(__always)
    static func distance(from a: UInt32, to b: UInt32) -> Int { Int(b &- a) }
}
