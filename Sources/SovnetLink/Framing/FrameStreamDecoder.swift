// Splits a byte stream into frames, sans I/O: the caller reads from its
// socket straight into `writableSpace`, commits what arrived, and takes every
// complete frame with `forEachFrame`. A partial frame stays in the buffer for
// the next read; the remainder is moved to the front only when the free space
// at the end gets too small for a whole frame, so the steady path neither
// allocates nor copies frames.
//
// For the `vm` framing's serving side, the decoder first consumes the
// connecting side's HTTP request head, and any frame bytes that arrived with
// it are decoded as frames (gvproxy must do the same).

/// Decodes length-prefixed frames from a stream.
public final class FrameStreamDecoder {
    public let prefix: LengthPrefix
    public let maximumFrameLength: Int
    /// The request head path to accept; nil when no head is expected.
    public let expectedRequestPath: String?
    /// The request head once it has been read.
    public private(set) var requestHead: String?

    /// Longest request head accepted before giving up.
    public static let maximumRequestHeadLength = 8192

    private let storage: UnsafeMutableRawBufferPointer
    /// Unconsumed bytes are `storage[start..<end]`.
    private var start = 0
    private var end = 0

    /// - Parameters:
    ///   - expectedRequestPath: for the serving side of `vm`, the path of the
    ///     request head to expect first (gvproxy: `/connect`).
    ///   - bufferCapacity: bytes read at most per call; at least one prefix
    ///     and one maximum-length frame.
    public init(prefix: LengthPrefix, maximumFrameLength: Int, expectedRequestPath: String? = nil,
                bufferCapacity: Int = 256 * 1024) {
        self.prefix = prefix
        self.maximumFrameLength = min(maximumFrameLength, prefix.maximumLength)
        self.expectedRequestPath = expectedRequestPath
        let capacity = max(bufferCapacity, prefix.size + self.maximumFrameLength,
                           expectedRequestPath == nil ? 0 : Self.maximumRequestHeadLength)
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { end - start }

    /// Whether the request head, if one is expected, has been read.
    public var isReadingFrames: Bool { expectedRequestPath == nil || requestHead != nil }

    /// Free space to read into, made as large as possible.
    public var writableSpace: UnsafeMutableRawBufferPointer {
        if start > 0, storage.count - end < prefix.size + maximumFrameLength {
            compact()
        }
        return UnsafeMutableRawBufferPointer(rebasing: storage[end...])
    }

    /// Records that `count` bytes were written into `writableSpace`.
    public func commit(_ count: Int) {
        precondition(count >= 0 && end + count <= storage.count, "commit beyond the writable space")
        end += count
    }

    /// Copies `bytes` in, for callers whose bytes come from elsewhere (tests,
    /// event-loop buffers). Returns how many fit; call `forEachFrame` and
    /// append the rest.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let space = writableSpace
        let count = min(space.count, bytes.count)
        if count > 0, let source = bytes.baseAddress, let target = space.baseAddress {
            target.copyMemory(from: source, byteCount: count)
        }
        commit(count)
        return count
    }

    /// Calls `body` with each complete frame; the bytes stay valid until the
    /// next `writableSpace` or `append`. Returns the number of frames. Throws when the stream breaks
    /// the framing; the connection must then be closed.
    @discardableResult
    public func forEachFrame(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        if !isReadingFrames {
            guard try readRequestHead() else { return 0 }
        }
        var frames = 0
        let base = UnsafeRawPointer(storage.baseAddress!)
        while end - start >= prefix.size {
            let length = prefix.load(from: base + start)
            try FramingError.check(length: length, maximum: maximumFrameLength)
            let frameStart = start + prefix.size
            guard end - frameStart >= length else { break }
            start = frameStart + length
            frames += 1
            try body(UnsafeRawBufferPointer(start: base + frameStart, count: length))
        }
        if start == end {
            start = 0
            end = 0
        }
        return frames
    }

    /// Takes every buffered byte (to hand a connection over to another server).
    public func drainBuffered() -> [UInt8] {
        let bytes = Array(UnsafeRawBufferPointer(rebasing: storage[start..<end]))
        start = 0
        end = 0
        return bytes
    }

    /// Throws if the stream ended inside a frame (call at end of file).
    public func finish() throws(FramingError) {
        if end > start { throw FramingError.closedMidFrame(bufferedBytes: end - start) }
    }

    private func compact() {
        let remaining = end - start
        if remaining > 0 {
            storage.baseAddress!.copyMemory(from: storage.baseAddress! + start, byteCount: remaining)
        }
        start = 0
        end = remaining
    }

    /// Consumes the request head if it is complete; true once it has been.
    private func readRequestHead() throws(FramingError) -> Bool {
        let bytes = UnsafeRawBufferPointer(rebasing: storage[start..<end])
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        if bytes.count >= 4 {
            for index in 0...(bytes.count - 4) where bytes[index] == 13
                && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                headEnd = index + terminator.count
                break
            }
        }
        guard let headEnd else {
            if bytes.count >= Self.maximumRequestHeadLength {
                throw FramingError.badRequestHead("no end of request head in \(bytes.count) bytes")
            }
            return false
        }
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self)
        let requestLine = String(decoding: bytes[..<headEnd].prefix { $0 != 13 }, as: UTF8.self)
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), parts[1].hasPrefix("/") else {
            throw FramingError.badRequestHead(String(requestLine.prefix(200)))
        }
        guard parts[0] == "POST", parts[1] == expectedRequestPath ?? "" else {
            throw FramingError.otherRequest
        }
        requestHead = head
        start += headEnd
        return true
    }
}
