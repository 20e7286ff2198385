import Testing
@testable import SovnetFraming

@Suite struct FrameStreamDecoderTests {
    func encode(_ frames: [[UInt8]], _ prefix: LengthPrefix) -> [UInt8] {
        var out: [UInt8] = []
        for frame in frames {
            var header = [UInt8](repeating: 0, count: prefix.size)
            header.withUnsafeMutableBytes { prefix.store(frame.count, at: $0.baseAddress!) }
            out += header + frame
        }
        return out
    }

    func decode(_ decoder: FrameStreamDecoder, _ bytes: [UInt8]) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var rest = bytes[...]
        repeat {
            let taken = rest.withUnsafeBytes { decoder.append($0) }
            rest = rest.dropFirst(taken)
            try decoder.forEachFrame { frames.append(Array($0)) }
        } while !rest.isEmpty
        return frames
    }

    @Test(arguments: [LengthPrefix.littleEndian16, .bigEndian32])
    func manyFramesInOneChunk(prefix: LengthPrefix) throws {
        let frames = (0..<300).map { testFrame(length: 14 + $0 * 5, seed: $0) }
        let decoder = FrameStreamDecoder(prefix: prefix, maximumFrameLength: 1518)
        #expect(try decode(decoder, encode(frames, prefix)) == frames)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test(arguments: [LengthPrefix.littleEndian16, .bigEndian32])
    func framesSplitAtEveryByte(prefix: LengthPrefix) throws {
        let frames = (0..<4).map { testFrame(length: 60 + $0, seed: $0) }
        let stream = encode(frames, prefix)
        for split in 1..<stream.count {
            let decoder = FrameStreamDecoder(prefix: prefix, maximumFrameLength: 1518)
            var got = try decode(decoder, Array(stream[..<split]))
            got += try decode(decoder, Array(stream[split...]))
            #expect(got == frames, "split at \(split)")
        }
    }

    @Test func bytesOneAtATimeAcrossCompaction() throws {
        let frames = (0..<2000).map { testFrame(length: 1000 + $0 % 518, seed: $0) }
        let stream = encode(frames, .littleEndian16)
        let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: 1518, bufferCapacity: 4096)
        var got: [[UInt8]] = []
        var offset = 0
        var generator = SystemRandomNumberGenerator()
        while offset < stream.count {
            let take = min(Int.random(in: 1...3000, using: &generator), stream.count - offset)
            let taken = stream[offset..<offset + take].withUnsafeBytes { decoder.append($0) }
            offset += taken
            try decoder.forEachFrame { got.append(Array($0)) }
        }
        #expect(got == frames)
    }

    @Test func requestHeadAndFramesInOneRead() throws {
        let frames = [testFrame(length: 60, seed: 1), testFrame(length: 1514, seed: 2)]
        let head = Framing.vmRequestHead()
        #expect(head.count == 85)
        let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: 1518, expectedRequestPath: "/connect")
        #expect(try decode(decoder, head + encode(frames, .littleEndian16)) == frames)
        #expect(decoder.requestHead == String(decoding: head, as: UTF8.self))
    }

    @Test func requestHeadSplitAcrossReads() throws {
        let stream = Framing.vmRequestHead() + encode([testFrame(length: 100, seed: 3)], .littleEndian16)
        for split in 1..<stream.count {
            let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: 1518, expectedRequestPath: "/connect")
            let got = try decode(decoder, Array(stream[..<split])) + decode(decoder, Array(stream[split...]))
            #expect(got.count == 1, "split at \(split)")
        }
    }

    @Test func badLengthsAndHeads() {
        func failure(_ bytes: [UInt8], path: String? = nil, maximum: Int = 1518) -> FramingError? {
            let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: maximum, expectedRequestPath: path)
            do {
                _ = try decode(decoder, bytes)
                return nil
            } catch {
                return error as? FramingError
            }
        }
        #expect(failure([0, 0, 1, 2]) == .zeroLength)
        #expect(failure([13, 0] + [UInt8](repeating: 0, count: 13)) == .runtFrame(length: 13))
        #expect(failure([0xFF, 0xFF]) == .oversizedFrame(length: 65535, maximum: 1518))
        #expect(failure([0x00, 0x06], maximum: 1500) == .oversizedFrame(length: 1536, maximum: 1500))
        #expect(failure(Array("GET /connect HTTP/1.1\r\n\r\n".utf8), path: "/connect") == .otherRequest)
        #expect(failure(Array("POST /other HTTP/1.1\r\n\r\n".utf8), path: "/connect") == .otherRequest)
        #expect(failure(Array("HELLO\r\n\r\n".utf8), path: "/connect") == .badRequestHead("HELLO"))
        #expect(failure([UInt8](repeating: 0x41, count: 9000), path: "/connect") != nil)
    }

    /// An API request on a shared socket keeps all its bytes for the API server.
    @Test func otherRequestsKeepTheirBytes() throws {
        let request = Array("GET /stats HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: 1518, expectedRequestPath: "/connect")
        #expect(throws: FramingError.otherRequest) { _ = try decode(decoder, request) }
        #expect(decoder.drainBuffered() == request)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func endOfStreamInsideAFrame() throws {
        let decoder = FrameStreamDecoder(prefix: .bigEndian32, maximumFrameLength: 1518)
        _ = try decode(decoder, [0, 0, 0, 60, 1, 2, 3])
        #expect(throws: FramingError.closedMidFrame(bufferedBytes: 7)) { try decoder.finish() }
    }
}

/// A made-up frame of `length` bytes whose bytes encode `seed`.
private func testFrame(length: Int, seed: Int) -> [UInt8] {
    (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }
}
