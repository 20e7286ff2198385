// The virtio-net header (virtio 1.x §5.1.6, its legacy 10-byte layout, as a
// Linux tap with IFF_VNET_HDR puts it before each frame, little-endian):
//
//   0  flags        1 NEEDS_CSUM: the checksum at csum_start + csum_offset
//                   holds only the pseudo-header's sum; the rest is still to
//                   be added. 2 DATA_VALID: the checksums are known good.
//   1  gso_type     0 none, 1 TCPv4, 3 UDP, 4 TCPv6 (0x80: ECN)
//   2  hdr_len      bytes of headers before the payload of a GSO frame
//   4  gso_size     the payload of each segment the frame stands for
//   6  csum_start   where the checksummed bytes begin (the transport header)
//   8  csum_offset  where the checksum is, from csum_start
//
// It lets a guest kernel hand over one 64 KiB TCP "superframe" instead of
// forty segments, with no checksum computed: sovnet forward and sovnet proxy
// pass such frames to each other when both ends agree (`OffloadLink`).

/// The header before a frame on an offloading link.
public struct VirtioNetHeader: Sendable, Equatable {
    public static let size = 10

    public static let needsChecksum: UInt8 = 1
    public static let dataValid: UInt8 = 2

    public enum SegmentationType: UInt8, Sendable {
        case none = 0
        case tcpv4 = 1
        case udp = 3
        case tcpv6 = 4
    }

    public var flags: UInt8 = 0
    /// The GSO type byte, ECN bit included.
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var segmentSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init() {}

    /// A header for a TCP frame whose checksum is left to the receiver: a
    /// superframe of `segmentSize`-byte segments when `segmentSize` is
    /// given, one segment otherwise. `headerLength` counts the Ethernet, IP
    /// and TCP headers; `ipv6` says which IP it is.
    public init(headerLength: Int, transportStart: Int, segmentSize: Int?, ipv6: Bool = false) {
        flags = Self.needsChecksum
        checksumStart = UInt16(transportStart)
        checksumOffset = 16
        if let segmentSize {
            gsoType = (ipv6 ? SegmentationType.tcpv6 : .tcpv4).rawValue
            self.segmentSize = UInt16(segmentSize)
            self.headerLength = UInt16(headerLength)
        }
    }

    /// Reads the header at the start of `bytes`.
    public init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.size else { throw WireError(.truncated, .ethernet, "virtio-net header") }
        flags = bytes[0]
        gsoType = bytes[1]
        headerLength = bytes.le16(2)
        segmentSize = bytes.le16(4)
        checksumStart = bytes.le16(6)
        checksumOffset = bytes.le16(8)
    }

    /// The segmentation the frame stands for (ECN bit aside), nil for a type this code does not know.
    public var segmentation: SegmentationType? { SegmentationType(rawValue: gsoType & 0x7F) }

    /// Whether the frame carries no promise about its checksums and stands for itself alone.
    public var isPlain: Bool { gsoType == 0 && flags & Self.needsChecksum == 0 }

    /// Writes the header at `pointer` (10 bytes).
    public func store(at pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: flags, as: UInt8.self)
        pointer.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        pointer.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        pointer.storeBytes(of: segmentSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        pointer.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        pointer.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }

    /// Appends the header.
    public func emit(into out: inout [UInt8]) {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: Self.size))
        out.withUnsafeMutableBytes { store(at: $0.baseAddress! + start) }
    }

    /// Ten zero bytes: a frame with nothing offloaded.
    public static let plain: [UInt8] = Array(repeating: 0, count: size)
}
