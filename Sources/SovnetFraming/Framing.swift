// The framings gvisor-tap-vsock speaks between a VM's network and the
// program that serves it (see docs/wire-compatibility.md):
//
//   vm     gvforwarder's: one HTTP request head `POST /connect ...` from the
//          connecting side, no reply, then uint16 little-endian length + frame
//   qemu   QEMU `-netdev stream`, passt, libkrun: uint32 big-endian length + frame
//   stdio  uint16 little-endian length + frame, no request head
//   bess   SOCK_SEQPACKET, one frame per packet
//   vfkit  SOCK_DGRAM, one frame per datagram; the first may be `VFKT`

/// How Ethernet frames are delimited on a connection.
public enum Framing: String, CaseIterable, Sendable, CustomStringConvertible {
    case vm, qemu, stdio, bess, vfkit

    /// The length prefix of a stream framing; nil when the socket keeps
    /// message boundaries itself.
    public var lengthPrefix: LengthPrefix? {
        switch self {
        case .vm, .stdio: .littleEndian16
        case .qemu: .bigEndian32
        case .bess, .vfkit: nil
        }
    }

    public var description: String { rawValue }

    /// The exact request head gvforwarder writes before its first frame:
    /// 85 bytes for the default path `/connect`.
    public static func vmRequestHead(path: String = "/connect") -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\r\n".utf8)
    }

    /// The datagram vfkit sends first so the server learns its address.
    public static let vfkitMagic: [UInt8] = Array("VFKT".utf8)
}

/// The length field in front of each frame of a stream framing.
public enum LengthPrefix: Sendable {
    case littleEndian16
    case bigEndian32

    /// Bytes the prefix takes.
    public var size: Int {
        switch self {
        case .littleEndian16: 2
        case .bigEndian32: 4
        }
    }

    /// The largest frame length the prefix can express.
    public var maximumLength: Int {
        switch self {
        case .littleEndian16: Int(UInt16.max)
        case .bigEndian32: Int(UInt32.max)
        }
    }

    /// Writes the prefix for `length` at `pointer`.
    @inlinable
    public func store(_ length: Int, at pointer: UnsafeMutableRawPointer) {
        switch self {
        case .littleEndian16:
            pointer.storeBytes(of: UInt16(truncatingIfNeeded: length).littleEndian, as: UInt16.self)
        case .bigEndian32:
            pointer.storeBytes(of: UInt32(truncatingIfNeeded: length).bigEndian, as: UInt32.self)
        }
    }

    /// Reads the prefix at `pointer`.
    @inlinable
    public func load(from pointer: UnsafeRawPointer) -> Int {
        switch self {
        case .littleEndian16:
            Int(UInt16(littleEndian: pointer.loadUnaligned(as: UInt16.self)))
        case .bigEndian32:
            Int(UInt32(bigEndian: pointer.loadUnaligned(as: UInt32.self)))
        }
    }
}

/// Why a framed connection was closed.
public enum FramingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A length prefix of 0.
    case zeroLength
    /// A frame shorter than an Ethernet header.
    case runtFrame(length: Int)
    /// A frame longer than the configured maximum.
    case oversizedFrame(length: Int, maximum: Int)
    /// The connecting side's request head was not a `POST` of the expected path.
    case badRequestHead(String)
    /// The peer closed the connection in the middle of a frame.
    case closedMidFrame(bufferedBytes: Int)
    /// The connecting side sent an HTTP request other than the expected
    /// `POST`: a control API call on a shared socket. The bytes stay buffered
    /// for whoever serves it (`FrameStreamDecoder.drainBuffered`).
    case otherRequest

    public var description: String {
        switch self {
        case .zeroLength: "frame length 0"
        case .runtFrame(let length): "frame of \(length) bytes is shorter than an Ethernet header"
        case .oversizedFrame(let length, let maximum): "frame of \(length) bytes exceeds the maximum of \(maximum)"
        case .badRequestHead(let head): "unexpected request head: \(head)"
        case .closedMidFrame(let bytes): "peer closed with \(bytes) bytes of an unfinished frame"
        case .otherRequest: "an HTTP request for the control API, not a guest"
        }
    }

    /// Checks a frame length against the limits every framing shares.
    @inlinable
    public static func check(length: Int, maximum: Int) throws(FramingError) {
        if length == 0 { throw FramingError.zeroLength }
        if length < 14 { throw FramingError.runtFrame(length: length) }
        if length > maximum { throw FramingError.oversizedFrame(length: length, maximum: maximum) }
    }
}

/// An error type that can carry a `FramingError`: what
/// `FrameStreamDecoder.forEachFrame` throws, so that the stream's errors and
/// those of the caller's body travel as one typed error.
public protocol FramingErrorCarrying: Error {
    init(framing: FramingError)
}

extension FramingError: FramingErrorCarrying {
    public init(framing: FramingError) {
        self = framing
    }
}
