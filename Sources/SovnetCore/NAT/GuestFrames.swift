// The frames the NAT sends to guests, built into one reusable buffer. Flows
// append whole frames (Ethernet, IPv4, transport header and payload, with
// checksums); the driver sends each port's frames with one call and clears
// the buffer, keeping its capacity, so the steady path allocates nothing.
// Datagrams longer than the link MTU are split into IPv4 fragments.
//
// Frames for a guest on an offloading link (`GuestLink.offload`) begin with
// a virtio-net header; their TCP checksums are left to the guest's kernel to
// complete, and a TCP segment may be a superframe standing for several.
import SovnetWire

/// Frames for guests, gathered between two sends.
public final class GuestFrames {
    /// One frame: which port it goes to and where its bytes are in `storage`.
    public struct Frame: Sendable {
        public var port: PortID
        public var range: Range<Int>
        /// The virtio-net header's bytes at the start of `range` (0 or 10).
        public var headerLength: Int
    }

    public let gatewayMAC: MACAddress
    /// The largest IPv4 packet a guest takes.
    public let mtu: Int
    public private(set) var storage: [UInt8] = []
    public private(set) var frames: [Frame] = []
    /// Bytes gathered for each port since the last `removeAll`.
    public private(set) var bytesByPort: [PortID: Int] = [:]
    private var scratch: [UInt8] = []
    private var identification: UInt16 = 0

    /// - Parameter capacity: bytes to reserve for the frames of one batch.
    public init(gatewayMAC: MACAddress, mtu: Int, capacity: Int = 256 * 1024) {
        self.gatewayMAC = gatewayMAC
        self.mtu = mtu
        storage.reserveCapacity(capacity)
    }

    public var isEmpty: Bool { frames.isEmpty }

    /// Forgets every frame, keeping the buffer.
    public func removeAll() {
        storage.removeAll(keepingCapacity: true)
        frames.removeAll(keepingCapacity: true)
        bytesByPort.removeAll(keepingCapacity: true)
    }

    /// Calls `body` with each port's frames, in the order they were added,
    /// and the length of the virtio-net header they begin with (0 for none).
    public func withFramesByPort(_ body: (PortID, [UnsafeRawBufferPointer], Int) -> Void) {
        storage.withUnsafeBytes { bytes in
            var pending: [PortID: [UnsafeRawBufferPointer]] = [:]
            var headers: [PortID: Int] = [:]
            var order: [PortID] = []
            for frame in frames {
                let slice = UnsafeRawBufferPointer(rebasing: bytes[frame.range])
                if pending[frame.port] == nil { order.append(frame.port) }
                pending[frame.port, default: []].append(slice)
                headers[frame.port] = frame.headerLength
            }
            for port in order { body(port, pending[port]!, headers[port] ?? 0) }
        }
    }

    private func nextIdentification() -> UInt16 {
        identification &+= 1
        return identification
    }

    private func begin(_ link: GuestLink, source: IPv4Address, destination: IPv4Address,
                       protocol: IPProtocol, payloadLength: Int, dontFragment: Bool = true,
                       moreFragments: Bool = false, fragmentOffset: Int = 0, identification: UInt16? = nil) -> Int {
        let start = storage.count
        if link.offload { storage.append(contentsOf: VirtioNetHeader.plain) }
        EthernetHeader(destination: link.mac, source: gatewayMAC, etherType: .ipv4).emit(into: &storage)
        IPv4Header(source: source, destination: destination, protocol: `protocol`, payloadLength: payloadLength,
                   ttl: 64, identification: identification ?? nextIdentification(), dontFragment: dontFragment,
                   moreFragments: moreFragments, fragmentOffset: fragmentOffset).emit(into: &storage)
        return start
    }

    private func end(_ link: GuestLink, from start: Int) {
        let headerLength = link.offload ? VirtioNetHeader.size : 0
        EthernetHeader.padToMinimum(&storage, frameStart: start + headerLength)
        frames.append(Frame(port: link.port, range: start..<storage.count, headerLength: headerLength))
        bytesByPort[link.port, default: 0] += storage.count - start
    }

    /// A TCP segment from `source` to the guest at `destination`. On an
    /// offloading link its checksum is left to complete, and a payload longer
    /// than `segmentSize` makes it a superframe of segments of that size.
    public func appendTCP(_ link: GuestLink, source: IPv4Address, destination: IPv4Address,
                          header: TCPHeader, payload: UnsafeRawBufferPointer, segmentSize: Int? = nil) {
        let start = begin(link, source: source, destination: destination, protocol: .tcp,
                          payloadLength: header.bufferLength + payload.count)
        header.emit(payload: payload, source: source, destination: destination,
                    checksum: link.offload ? .partial : .full, into: &storage)
        if link.offload {
            let transportStart = EthernetView.headerLength + IPv4View.minimumHeaderLength
            let superframe = segmentSize.flatMap { payload.count > $0 ? $0 : nil }
            let virtio = VirtioNetHeader(tcpv4HeaderLength: transportStart + header.bufferLength,
                                         transportStart: transportStart, segmentSize: superframe)
            storage.withUnsafeMutableBytes { virtio.store(at: $0.baseAddress! + start) }
        }
        end(link, from: start)
    }

    /// A UDP datagram, in fragments when it does not fit the MTU.
    public func appendUDP(_ link: GuestLink, source: IPv4Address, sourcePort: UInt16,
                          destination: IPv4Address, destinationPort: UInt16, payload: UnsafeRawBufferPointer) {
        if 20 + 8 + payload.count <= mtu {
            let start = begin(link, source: source, destination: destination, protocol: .udp,
                              payloadLength: 8 + payload.count)
            UDPHeader(sourcePort: sourcePort, destinationPort: destinationPort)
                .emit(payload: payload, source: source, destination: destination, into: &storage)
            end(link, from: start)
            return
        }
        scratch.removeAll(keepingCapacity: true)
        UDPHeader(sourcePort: sourcePort, destinationPort: destinationPort)
            .emit(payload: payload, source: source, destination: destination, into: &scratch)
        appendFragments(link, source: source, destination: destination, protocol: .udp)
    }

    /// An ICMP message (`header` and `body`) from `source` to the guest.
    public func appendICMP(_ link: GuestLink, source: IPv4Address, destination: IPv4Address,
                           header: ICMPv4Header, body: UnsafeRawBufferPointer) {
        if 20 + 8 + body.count <= mtu {
            let start = begin(link, source: source, destination: destination, protocol: .icmp,
                              payloadLength: 8 + body.count)
            header.emit(body: body, into: &storage)
            end(link, from: start)
            return
        }
        scratch.removeAll(keepingCapacity: true)
        header.emit(body: body, into: &scratch)
        appendFragments(link, source: source, destination: destination, protocol: .icmp)
    }

    /// Splits `scratch` (a whole transport packet) into fragments of at most the MTU.
    private func appendFragments(_ link: GuestLink, source: IPv4Address, destination: IPv4Address,
                                 protocol: IPProtocol) {
        let chunk = max(8, (mtu - 20) / 8 * 8)
        let identification = nextIdentification()
        var offset = 0
        while offset < scratch.count {
            let length = min(chunk, scratch.count - offset)
            let last = offset + length == scratch.count
            let start = begin(link, source: source, destination: destination, protocol: `protocol`,
                              payloadLength: length, dontFragment: false, moreFragments: !last,
                              fragmentOffset: offset, identification: identification)
            storage.append(contentsOf: scratch[offset..<offset + length])
            end(link, from: start)
            offset += length
        }
    }
}
