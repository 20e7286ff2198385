// What a virtio-net header left undone, done in software, for a frame from
// an offloading link that goes somewhere offloads are not understood (a
// guest on a plain link, the gateway's own services): a checksum that holds
// only the pseudo-header's sum is completed, and a TCP superframe is cut
// into the segments it stands for, each with its own IP (v4 or v6) and TCP
// headers and checksums, as Linux's software GSO does.

/// How a frame switched between two guests changes on the way.
public enum FrameConversion: Equatable, Sendable {
    /// Sent as it came: both ports plain, or both offloading (header kept).
    case unchanged
    /// From a plain port to an offloading one: a plain virtio-net header goes first.
    case addPlainHeader
    /// From an offloading port to a plain one, a frame with nothing left
    /// undone: its header comes off.
    case removeHeader
    /// From an offloading port to a plain one, a frame with a checksum to
    /// complete or segments to cut: the plain frames it stands for (`frames(of:header:)`).
    case finishInSoftware
}

/// Finishing offloaded frames.
public enum SoftwareOffload {
    /// What a frame with virtio-net header `header` (nil: from a plain
    /// port) needs to reach a port that is offloading or not.
    public static func conversion(from header: VirtioNetHeader?, toOffloading: Bool) -> FrameConversion {
        switch (header, toOffloading) {
        case (.some, true), (nil, false): .unchanged
        case (nil, true): .addPlainHeader
        case (let header?, false): header.isPlain ? .removeHeader : .finishInSoftware
        }
    }

    /// Completes the checksum of a NEEDS_CSUM frame in place: the one's
    /// complement of the sum from `checksumStart` to the end, the field's
    /// pseudo-header sum included (UDP's 0 is sent as 0xFFFF). False when
    /// the header points outside the frame.
    @discardableResult
    public static func completeChecksum(_ frame: UnsafeMutableRawBufferPointer, header: VirtioNetHeader) -> Bool {
        let start = Int(header.checksumStart)
        let field = start + Int(header.checksumOffset)
        guard header.flags & VirtioNetHeader.needsChecksum != 0, start <= frame.count, field + 2 <= frame.count else {
            return false
        }
        var sum = InternetChecksum()
        sum.add(UnsafeRawBufferPointer(rebasing: frame[start...]))
        var value = sum.value
        if header.checksumOffset == 6, value == 0 { value = 0xFFFF }
        frame[field] = UInt8(value >> 8)
        frame[field + 1] = UInt8(value & 0xFF)
        return true
    }

    /// The plain frames `frame` stands for: itself with its checksum
    /// completed, or the segments of a TCP superframe. Nil for a frame
    /// that does not parse or a segmentation this code does not do.
    public static func frames(of frame: UnsafeRawBufferPointer, header: VirtioNetHeader) -> [[UInt8]]? {
        switch header.segmentation {
        case .none?:
            var copy = Array(frame)
            if header.flags & VirtioNetHeader.needsChecksum != 0 {
                guard copy.withUnsafeMutableBytes({ completeChecksum($0, header: header) }) else { return nil }
            }
            return [copy]
        case .tcpv4?:
            return segments(frame, segmentSize: Int(header.segmentSize), ipv6: false)
        case .tcpv6?:
            return segments(frame, segmentSize: Int(header.segmentSize), ipv6: true)
        default:
            return nil
        }
    }

    /// The smallest segment size cut in software: Linux's floor for the MSS
    /// it sends (net.ipv4.tcp_min_snd_mss). A smaller one would turn one
    /// 64 KB superframe into tens of thousands of frames.
    public static let minimumSegmentSize = 48

    /// The IP layer of a superframe: where its TCP segment is, and how each
    /// segment's IP header is rewritten.
    private struct SuperframeIP {
        var headerLength: Int
        var source: IPAddress
        var destination: IPAddress
        /// IPv4's identification, counted up per segment; nil for IPv6.
        var identification: UInt16?
        var tcp: TCPView

        /// Nil unless the frame holds TCP over the IP version the header named.
        init?(_ ethernet: EthernetView, ipv6: Bool) {
            if !ipv6, let ip = try? IPv4View(ethernet.payload, verifyChecksum: false), ip.protocol == .tcp,
               let tcp = try? TCPView(ip.payload) {
                (headerLength, source, destination) = (ip.headerLength, .v4(ip.source), .v4(ip.destination))
                (identification, self.tcp) = (ip.identification, tcp)
            } else if ipv6, let ip = try? IPv6View(ethernet.payload), ip.nextHeader == .tcp, let tcp = try? TCPView(ip.payload) {
                (headerLength, source, destination) = (IPv6View.headerLength, .v6(ip.source), .v6(ip.destination))
                (identification, self.tcp) = (nil, tcp)
            } else {
                return nil
            }
        }
    }

    /// Cuts a TCP superframe (IPv4, or IPv6 without extension headers, as
    /// its header said) into segments of `segmentSize` payload bytes.
    static func segments(_ frame: UnsafeRawBufferPointer, segmentSize: Int, ipv6: Bool) -> [[UInt8]]? {
        guard segmentSize >= minimumSegmentSize, let ethernet = try? EthernetView(frame),
              let ip = SuperframeIP(ethernet, ipv6: ipv6) else { return nil }
        let tcp = ip.tcp
        let linkLength = ethernet.payloadOffset
        let ipLength = ip.headerLength
        let tcpLength = tcp.headerLength
        let headers = linkLength + ipLength + tcpLength
        let payload = tcp.payload
        let flags = tcp.flags
        var frames: [[UInt8]] = []
        frames.reserveCapacity(payload.count / segmentSize + 1)
        var offset = 0
        repeat {
            let length = min(segmentSize, payload.count - offset)
            let last = offset + length >= payload.count
            var segment = Array(UnsafeRawBufferPointer(rebasing: frame[..<headers]))
            segment.append(contentsOf: UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + length)]))
            segment.withUnsafeMutableBytes { bytes in
                let ipStart = linkLength
                let tcpStart = linkLength + ipLength
                if let identification = ip.identification {
                    storeBE16(bytes, ipStart + 2, UInt16(ipLength + tcpLength + length))
                    storeBE16(bytes, ipStart + 4, identification &+ UInt16(truncatingIfNeeded: frames.count))
                    storeBE16(bytes, ipStart + 10, 0)
                    storeBE16(bytes, ipStart + 10, InternetChecksum.of(UnsafeRawBufferPointer(rebasing: bytes[ipStart..<tcpStart])))
                } else {
                    storeBE16(bytes, ipStart + 4, UInt16(tcpLength + length))
                }
                let sequence = tcp.sequenceNumber &+ UInt32(truncatingIfNeeded: offset)
                for index in 0..<4 { bytes[tcpStart + 4 + index] = UInt8(truncatingIfNeeded: sequence >> (24 - 8 * index)) }
                var segmentFlags = flags
                if !last { segmentFlags.remove([.fin, .psh]) }
                if offset > 0 { segmentFlags.remove(.cwr) }
                let word = UInt16(bytes[tcpStart + 12]) << 8 & 0xF000 | segmentFlags.rawValue
                storeBE16(bytes, tcpStart + 12, word)
                storeBE16(bytes, tcpStart + 16, 0)
                var sum = InternetChecksum()
                sum.addPseudoHeader(source: ip.source, destination: ip.destination, protocol: .tcp,
                                    length: tcpLength + length)
                sum.add(UnsafeRawBufferPointer(rebasing: bytes[tcpStart...]))
                storeBE16(bytes, tcpStart + 16, sum.value)
            }
            frames.append(segment)
            offset += length
        } while offset < payload.count
        return frames
    }

    private static func storeBE16(_ bytes: UnsafeMutableRawBufferPointer, _ offset: Int, _ value: UInt16) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(value & 0xFF)
    }
}
