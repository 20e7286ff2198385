// A framed connection over a byte stream (unix, vsock or TCP socket, or a
// pair of pipes for stdio): the `vm`, `qemu` and `stdio` framings.
//
// Receiving is one read(2) into the decoder's buffer, which may hold many
// frames and end inside one. Sending builds one iovec pair (prefix, frame)
// per frame and writes up to 512 frames with a single sendmsg(2)/writev(2).
// The prefixes live in a buffer allocated once, so neither path allocates.
import Glibc
import Logging

/// A connection speaking a length-prefixed framing.
public final class StreamFrameConnection: FrameEndpoint {
    public let framing: Framing
    public let decoder: FrameStreamDecoder
    public let readDescriptor: Int32
    public let writeDescriptor: Int32
    private let prefix: LengthPrefix
    private let writesToSocket: Bool
    private let logger: Logger
    private var closed = false

    /// Frames per system call when sending.
    public static let sendBatch = 512
    private let vectors: UnsafeMutableBufferPointer<iovec>
    private let prefixes: UnsafeMutableRawPointer

    /// Wraps connected descriptors (the same one twice for a socket).
    /// - Parameter expectedRequestPath: on the serving side of `vm`, the
    ///   request path to read before frames (`/connect`).
    public init(framing: Framing, readDescriptor: Int32, writeDescriptor: Int32, maximumFrameLength: Int,
                expectedRequestPath: String? = nil, logger: Logger = Logger(label: "sovnet.link")) {
        let prefix = framing.lengthPrefix ?? .littleEndian16
        self.framing = framing
        self.prefix = prefix
        self.readDescriptor = readDescriptor
        self.writeDescriptor = writeDescriptor
        self.logger = logger
        decoder = FrameStreamDecoder(prefix: prefix, maximumFrameLength: maximumFrameLength,
                                     expectedRequestPath: expectedRequestPath)
        writesToSocket = Descriptor.isSocket(writeDescriptor)
        vectors = .allocate(capacity: 2 * Self.sendBatch)
        prefixes = .allocate(byteCount: 4 * Self.sendBatch, alignment: 4)
    }

    deinit {
        close()
        vectors.deallocate()
        prefixes.deallocate()
    }

    public func receive(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> ReceiveStatus {
        let space = decoder.writableSpace
        var count: Int
        repeat {
            count = read(readDescriptor, space.baseAddress, space.count)
        } while count < 0 && errno == EINTR
        if count < 0 {
            if errno == EAGAIN { return .wouldBlock }
            throw LinkError.lastError("read")
        }
        if count == 0 {
            do throws(FramingError) {
                try decoder.finish()
            } catch {
                logger.warning("closing \(framing) connection: \(error)")
                throw LinkError.framing(error)
            }
            return .closed
        }
        decoder.commit(count)
        do {
            return .frames(try decoder.forEachFrame(body))
        } catch let error as FramingError {
            if error != .otherRequest { logger.warning("closing \(framing) connection: \(error)") }
            throw LinkError.framing(error)
        }
    }

    public func send(_ frames: [UnsafeRawBufferPointer]) throws {
        var index = 0
        while index < frames.count {
            let batch = min(frames.count - index, Self.sendBatch)
            for slot in 0..<batch {
                let frame = frames[index + slot]
                guard frame.count <= decoder.maximumFrameLength, frame.count > 0 else {
                    throw LinkError.framing(.oversizedFrame(length: frame.count, maximum: decoder.maximumFrameLength))
                }
                let header = prefixes + 4 * slot
                prefix.store(frame.count, at: header)
                vectors[2 * slot] = iovec(iov_base: header, iov_len: prefix.size)
                vectors[2 * slot + 1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
            }
            try Descriptor.writeAll(writeDescriptor, UnsafeMutableBufferPointer(rebasing: vectors[..<(2 * batch)]),
                                    isSocket: writesToSocket)
            index += batch
        }
    }

    /// Writes raw bytes before any frame (the `vm` request head).
    func sendRaw(_ bytes: [UInt8]) throws {
        var copy = bytes
        try copy.withUnsafeMutableBytes { raw in
            vectors[0] = iovec(iov_base: raw.baseAddress, iov_len: raw.count)
            try Descriptor.writeAll(writeDescriptor, UnsafeMutableBufferPointer(rebasing: vectors[..<1]),
                                    isSocket: writesToSocket)
        }
    }

    /// Gives up the descriptor without closing it, for a socket handed over
    /// to another server; the connection is closed as far as it knows.
    public func releaseDescriptor() -> Int32 {
        closed = true
        return readDescriptor
    }

    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(readDescriptor)
        if writeDescriptor != readDescriptor { Glibc.close(writeDescriptor) }
    }
}
