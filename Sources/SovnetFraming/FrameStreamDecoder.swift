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
//
// On a serial line (`SerialLink.swift`) the decoder is given the marker its
// peer sends: it discards bytes until a whole marker, takes markers that
// stand where a frame may, and on a length no frame can have it discards
// again until the next marker, counting what it dropped instead of throwing.

import CSovnetShim

/// Decodes length-prefixed frames from a stream.
public final class FrameStreamDecoder {
    public let prefix: LengthPrefix
    public let maximumFrameLength: Int
    /// The request head path to accept; nil when no head is expected.
    public let expectedRequestPath: String?
    /// The request head once it has been read.
    public private(set) var requestHead: String?
    /// Where a connecting side asks for virtio-net headers (`OffloadLink`);
    /// nil when this side does not offer them.
    public let offloadRequestPath: String?
    /// The connecting side asked for virtio-net headers with its request head.
    public private(set) var offloadRequested = false
    /// On a serial line, the marker that resynchronises the stream.
    public let marker: SerialMarker?
    /// Whether frame boundaries are known (always, without a marker).
    public private(set) var isSynchronized: Bool
    /// Markers read so far, and the last one whole.
    public private(set) var markersRead = 0
    public private(set) var lastMarker: [UInt8] = []
    /// Bytes discarded while looking for a marker.
    public private(set) var discardedBytes = 0
    /// Times a length no frame can have made the decoder look for a marker again.
    public private(set) var lostSynchronization = 0

    /// Longest request head accepted before giving up.
    public static let maximumRequestHeadLength = 8192

    private let storage: UnsafeMutableRawBufferPointer
    /// Unconsumed bytes are `storage[start..<end]`.
    private var start = 0
    private var end = 0

    /// - Parameters:
    ///   - expectedRequestPath: for the serving side of `vm`, the path of the
    ///     request head to expect first (gvproxy: `/connect`).
    ///   - marker: on a serial line, the peer's marker: the decoder starts
    ///     unsynchronised and never throws.
    ///   - bufferCapacity: bytes read at most per call; at least one prefix
    ///     and one maximum-length frame.
    public init(prefix: LengthPrefix, maximumFrameLength: Int, expectedRequestPath: String? = nil,
                offloadRequestPath: String? = nil, marker: SerialMarker? = nil, bufferCapacity: Int = 256 * 1024) {
        self.prefix = prefix
        self.maximumFrameLength = min(maximumFrameLength, prefix.maximumLength)
        self.expectedRequestPath = expectedRequestPath
        self.offloadRequestPath = offloadRequestPath
        self.marker = marker
        isSynchronized = marker == nil
        let capacity = max(bufferCapacity, prefix.size + self.maximumFrameLength,
                           expectedRequestPath == nil ? 0 : Self.maximumRequestHeadLength)
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { end - start }

    /// The most frames one `forEachFrame` call hands out, so that a reader
    /// serving many connections can turn to the others between calls; the
    /// rest stay buffered (`hasCompleteFrame`). Not applied on a serial line,
    /// whose markers are found only while reading on.
    public var frameBudget = Int.max

    /// Whether a whole frame is buffered already (never on a serial line).
    public var hasCompleteFrame: Bool {
        guard marker == nil, isReadingFrames, end - start >= prefix.size else { return false }
        return end - start - prefix.size >= prefix.load(from: UnsafeRawPointer(storage.baseAddress!) + start)
    }

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
    /// next `writableSpace` or `append`. Returns the number of frames. Throws
    /// what `body` throws, and `E(framing:)` when the stream breaks the
    /// framing; the connection must then be closed.
    @discardableResult
    public func forEachFrame<E: FramingErrorCarrying>(_ body: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) -> Int {
        do throws(FramingError) {
            if !isReadingFrames {
                guard try readRequestHead() else { return 0 }
            }
        } catch {
            throw E(framing: error)
        }
        var frames = 0
        let base = UnsafeRawPointer(storage.baseAddress!)
        let budget = marker == nil ? frameBudget : Int.max
        reading: while end - start >= prefix.size, frames < budget {
            if let marker {
                if !isSynchronized {
                    guard seek(marker) else { break }
                    continue
                }
                switch markerAtStart(marker) {
                case .whole:
                    takeMarker(marker)
                    continue reading
                case .partial:
                    break reading
                case .none:
                    break
                }
            }
            let length = prefix.load(from: base + start)
            if marker != nil, length < 14 || length > maximumFrameLength {
                isSynchronized = false
                lostSynchronization += 1
                continue
            }
            do throws(FramingError) {
                try FramingError.check(length: length, maximum: maximumFrameLength)
            } catch {
                throw E(framing: error)
            }
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

    /// `forEachFrame` for a body that cannot fail.
    @discardableResult
    public func forEachFrame(_ body: (UnsafeRawBufferPointer) -> Void) throws(FramingError) -> Int {
        try forEachFrame { (frame) throws(FramingError) in body(frame) }
    }

    /// Takes an HTTP response head at the start of the buffered bytes (the
    /// answer to an offload request): its text once it is whole, or nil
    /// while its end has not arrived. Frame bytes after it stay buffered.
    /// Throws when the bytes cannot begin a response head.
    public func takeResponseHead() throws(FramingError) -> String? {
        let bytes = UnsafeRawBufferPointer(rebasing: storage[start..<end])
        let expected = Array("HTTP/1.".utf8)
        guard bytes.starts(with: expected.prefix(bytes.count)) else {
            throw FramingError.badRequestHead(String(decoding: bytes.prefix(40), as: UTF8.self))
        }
        let terminator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4,
              let found = terminator.withUnsafeBytes({ sovnet_memmem(bytes.baseAddress!, bytes.count, $0.baseAddress!, 4) }) else {
            if bytes.count >= Self.maximumRequestHeadLength { throw FramingError.badRequestHead("no end of response head") }
            return nil
        }
        let length = UnsafeRawPointer(bytes.baseAddress!).distance(to: found) + 4
        let head = String(decoding: bytes[..<length], as: UTF8.self)
        start += length
        if start == end {
            start = 0
            end = 0
        }
        return head
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
        if end > start, marker == nil { throw FramingError.closedMidFrame(bufferedBytes: end - start) }
    }

    private enum MarkerMatch { case whole, partial, none }

    /// Whether the unconsumed bytes begin with a marker (or could, with more of them).
    private func markerAtStart(_ marker: SerialMarker) -> MarkerMatch {
        let available = end - start
        let compared = min(available, marker.prefix.count)
        let matches = UnsafeRawBufferPointer(start: storage.baseAddress! + start, count: compared)
            .elementsEqual(marker.prefix[..<compared])
        guard matches else { return .none }
        return available >= marker.length ? .whole : .partial
    }

    /// Consumes the marker at the start of the unconsumed bytes.
    private func takeMarker(_ marker: SerialMarker) {
        lastMarker = Array(UnsafeRawBufferPointer(rebasing: storage[start..<(start + marker.length)]))
        start += marker.length
        markersRead += 1
        isSynchronized = true
    }

    /// Discards bytes up to the next marker and takes it; false when more
    /// bytes are needed (the tail that may begin a marker is kept).
    private func seek(_ marker: SerialMarker) -> Bool {
        let available = end - start
        let found = marker.prefix.withUnsafeBytes { needle in
            sovnet_memmem(storage.baseAddress! + start, available, needle.baseAddress!, needle.count)
        }
        guard let found else {
            let kept = min(available, marker.prefix.count - 1)
            discardedBytes += available - kept
            start = end - kept
            return false
        }
        let offset = UnsafeRawPointer(storage.baseAddress!).distance(to: found)
        discardedBytes += offset - start
        start = offset
        guard end - start >= marker.length else { return false }
        takeMarker(marker)
        return true
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
        let path = String(parts[1])
        guard parts[0] == "POST", path == expectedRequestPath ?? "" || path == offloadRequestPath else {
            throw FramingError.otherRequest
        }
        offloadRequested = path == offloadRequestPath
        requestHead = head
        start += headEnd
        return true
    }
}
