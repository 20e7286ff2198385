import Testing
@testable import SovnetWire

@Suite struct ChecksumTests {
    /// RFC 1071 §3's worked example: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
    @Test func rfc1071Example() {
        var sum = InternetChecksum()
        sum.add([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7])
        #expect(sum.sum16 == 0xDDF2)
        #expect(sum.value == 0x220D)
    }

    @Test func chunksOfAnyLengthSumLikeTheWhole() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<500 {
            let length = Int(generator.next() % 200)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            var whole = InternetChecksum()
            whole.add(bytes)
            var pieces = InternetChecksum()
            var offset = 0
            while offset < length {
                let take = min(Int(generator.next() % 9), length - offset)
                pieces.add(Array(bytes[offset..<offset + take]))
                offset += take
            }
            #expect(whole.value == pieces.value)
        }
    }

    /// The word-at-a-time sum agrees with RFC 1071's definition, 16 bits at a
    /// time, for lengths past several unrolled turns and bytes that carry often.
    @Test func agreesWithTheSixteenBitDefinition() {
        var generator = SplitMix64(seed: 13)
        for round in 0..<400 {
            let length = Int(generator.next() % 70_000)
            let heavy = round % 2 == 0
            let bytes = (0..<length).map { _ in heavy ? UInt8(0xF0 | generator.next() % 16) : UInt8(truncatingIfNeeded: generator.next()) }
            var reference: UInt32 = 0
            var index = 0
            while index < length {
                reference += UInt32(bytes[index]) << 8 | (index + 1 < length ? UInt32(bytes[index + 1]) : 0)
                reference = (reference & 0xFFFF) + (reference >> 16)
                index += 2
            }
            var sum = InternetChecksum()
            sum.add(bytes)
            #expect(sum.sum16 == UInt16(reference), "length \(length)")
        }
    }

    /// RFC 1624: updating a field incrementally gives the checksum of the new bytes.
    @Test func incrementalUpdateMatchesRecomputation() throws {
        var generator = SplitMix64(seed: 11)
        for frame in try CaptureVectors.frames("tcp-http.pcap") {
            var packet = Array(frame[14..<34])
            let before = packet.withUnsafeBytes { $0.be16(10) }
            let oldAddress = packet.withUnsafeBytes { $0.be32(16) }
            let newAddress = UInt32(truncatingIfNeeded: generator.next())
            for index in 0..<4 { packet[16 + index] = UInt8(truncatingIfNeeded: newAddress >> (24 - 8 * index)) }
            let updated = InternetChecksum.update(before, old: oldAddress, new: newAddress)
            packet.storeBE16(updated, at: 10)
            #expect(packet.withUnsafeBytes { InternetChecksum.of($0) } == 0)
        }
    }

    /// RFC 1624 §4's example: m = 0x5555 becomes 0x3285 where the other
    /// words sum to 0xCD7A. Recomputing gives 0x0000, and so must eqn. 3.
    @Test func rfc1624Example() {
        var sum = InternetChecksum()
        sum.add([0xCD, 0x7A, 0x55, 0x55])
        #expect(sum.value == 0xDD2F)
        #expect(InternetChecksum.update(0xDD2F, old: UInt16(0x5555), new: UInt16(0x3285)) == 0x0000)
    }
}

/// A small deterministic generator (SplitMix64), so property tests repeat.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
