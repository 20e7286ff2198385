// The frames the NAT sends to guests, built into one reusable buffer. Flows
// append whole frames (Ethernet, IPv4 or IPv6, transport header and payload,
// with checksums); the driver sends each port's frames with one call and
// clears the buffer, keeping its capacity, so the steady path allocates
// nothing. Datagrams longer than the link MTU are split into fragments: IPv4
// ones, or IPv6 ones with a Fragment header (RFC 8200 §4.5), as the source
// of the packet may.
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
        /// Its port's place in `ports`.
        var slot: Int
    }

    /// A port with frames in this batch.
    private struct PortTotal {
        var port: PortID
        var bytes = 0
        var frames = 0
    }

    public let gatewayMAC: MACAddress
    /// The largest IP packet a guest takes.
    public let mtu: Int
    public private(set) var storage: [UInt8] = []
    public private(set) var frames: [Frame] = []
    /// Each port's place in `ports`.
    private var slots: [PortID: Int] = [:]
    /// The ports with frames, in the order of their first frame.
    private var ports: [PortTotal] = []
    /// Frame indices grouped by port, and one port's frames: rebuilt by
    /// `withFramesByPort` in buffers it keeps.
    private var grouped: [Int] = []
    private var portFrames: [UnsafeRawBufferPointer] = []
    private var scratch: [UInt8] = []
    private var identification: UInt32 = 0

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
        slots.removeAll(keepingCapacity: true)
        ports.removeAll(keepingCapacity: true)
    }

    /// Bytes gathered for `port` since the last `removeAll`.
    public func bytes(for port: PortID) -> Int {
        slot(of: port).map { ports[$0].bytes } ?? 0
    }

    /// `port`'s place in `ports`: the last port's first, since frames for
    /// one port come in runs, without hashing.
    private func slot(of port: PortID) -> Int? {
        if let last = ports.indices.last, ports[last].port == port { return last }
        return slots[port]
    }

    /// Calls `body` with each port's frames, in the order they were added,
    /// the length of the virtio-net header they begin with (0 for none) and
    /// their bytes in all. The frames array is valid only during the call.
    public func withFramesByPort(_ body: (PortID, [UnsafeRawBufferPointer], Int, Int) -> Void) {
        storage.withUnsafeBytes { bytes in
            if ports.count == 1 {
                portFrames.removeAll(keepingCapacity: true)
                for frame in frames { portFrames.append(UnsafeRawBufferPointer(rebasing: bytes[frame.range])) }
                body(ports[0].port, portFrames, frames[0].headerLength, ports[0].bytes)
                return
            }
            groupBySlot()
            var start = 0
            for total in ports {
                portFrames.removeAll(keepingCapacity: true)
                for index in grouped[start..<start + total.frames] {
                    portFrames.append(UnsafeRawBufferPointer(rebasing: bytes[frames[index].range]))
                }
                body(total.port, portFrames, frames[grouped[start]].headerLength, total.bytes)
                start += total.frames
            }
        }
    }

    /// Fills `grouped` with the frame indices, port after port in the order
    /// of `ports` and in order within each: one counting pass, however many
    /// ports there are.
    private func groupBySlot() {
        var next: [Int] = []
        next.reserveCapacity(ports.count)
        var offset = 0
        for total in ports {
            next.append(offset)
            offset += total.frames
        }
        grouped.removeAll(keepingCapacity: true)
        grouped.append(contentsOf: repeatElement(0, count: frames.count))
        for (index, frame) in frames.enumerated() {
            grouped[next[frame.slot]] = index
            next[frame.slot] += 1
        }
    }

    private func nextIdentification() -> UInt32 {
        identification &+= 1
        return identification
    }

    /// Where a fragment sits in the packet it was cut from.
    private struct FragmentPlace {
        var offset: Int
        var more: Bool
        var identification: UInt32
    }

    private static func ipHeaderLength(_ address: IPAddress) -> Int {
        address.isIPv6 ? IPv6View.headerLength : IPv4View.minimumHeaderLength
    }

    /// Starts a frame: the virtio-net header on an offloading link, Ethernet,
    /// and the IP header (with a Fragment header for an IPv6 fragment).
    private func begin(_ link: GuestLink, source: IPAddress, destination: IPAddress, protocol: IPProtocol,
                       payloadLength: Int, fragment: FragmentPlace? = nil) -> Int {
        let start = storage.count
        if link.offload { storage.append(contentsOf: VirtioNetHeader.plain) }
        if case .v4(let source) = source, case .v4(let destination) = destination {
            EthernetHeader(destination: link.mac, source: gatewayMAC, etherType: .ipv4).emit(into: &storage)
            IPv4Header(source: source, destination: destination, protocol: `protocol`, payloadLength: payloadLength,
                       ttl: 64, identification: UInt16(truncatingIfNeeded: fragment?.identification ?? nextIdentification()),
                       dontFragment: fragment == nil, moreFragments: fragment?.more ?? false,
                       fragmentOffset: fragment?.offset ?? 0).emit(into: &storage)
            return start
        }
        EthernetHeader(destination: link.mac, source: gatewayMAC, etherType: .ipv6).emit(into: &storage)
        guard let fragment else {
            IPv6Header(source: source.asIPv6, destination: destination.asIPv6, nextHeader: `protocol`,
                       payloadLength: payloadLength).emit(into: &storage)
            return start
        }
        IPv6Header(source: source.asIPv6, destination: destination.asIPv6, nextHeader: .ipv6Fragment,
                   payloadLength: IPv6FragmentHeader.length + payloadLength).emit(into: &storage)
        IPv6FragmentHeader(nextHeader: `protocol`, offset: fragment.offset, moreFragments: fragment.more,
                           identification: fragment.identification).emit(into: &storage)
        return start
    }

    private func end(_ link: GuestLink, from start: Int) {
        let headerLength = link.offload ? VirtioNetHeader.size : 0
        EthernetHeader.padToMinimum(&storage, frameStart: start + headerLength)
        let place: Int
        if let known = slot(of: link.port) {
            place = known
        } else {
            place = ports.count
            slots[link.port] = place
            ports.append(PortTotal(port: link.port))
        }
        frames.append(Frame(port: link.port, range: start..<storage.count, headerLength: headerLength, slot: place))
        ports[place].bytes += storage.count - start
        ports[place].frames += 1
    }

    /// A TCP segment from `source` to the guest at `destination`. On an
    /// offloading link its checksum is left to complete, and a payload longer
    /// than `segmentSize` makes it a superframe of segments of that size.
    public func appendTCP(_ link: GuestLink, source: IPAddress, destination: IPAddress,
                          header: TCPHeader, payload: UnsafeRawBufferPointer, segmentSize: Int? = nil) {
        let start = begin(link, source: source, destination: destination, protocol: .tcp,
                          payloadLength: header.bufferLength + payload.count)
        header.emit(payload: payload, source: source, destination: destination,
                    checksum: link.offload ? .partial : .full, into: &storage)
        if link.offload {
            let transportStart = EthernetView.headerLength + Self.ipHeaderLength(source)
            let superframe = segmentSize.flatMap { payload.count > $0 ? $0 : nil }
            let virtio = VirtioNetHeader(headerLength: transportStart + header.bufferLength, transportStart: transportStart,
                                         segmentSize: superframe, ipv6: source.isIPv6)
            storage.withUnsafeMutableBytes { virtio.store(at: $0.baseAddress! + start) }
        }
        end(link, from: start)
    }

    /// A UDP datagram, in fragments when it does not fit the MTU.
    public func appendUDP(_ link: GuestLink, source: IPAddress, sourcePort: UInt16,
                          destination: IPAddress, destinationPort: UInt16, payload: UnsafeRawBufferPointer) {
        appendPacket(link, source: source, destination: destination, protocol: .udp, length: 8 + payload.count) {
            UDPHeader(sourcePort: sourcePort, destinationPort: destinationPort)
                .emit(payload: payload, source: source, destination: destination, into: &$0)
        }
    }

    /// An ICMP message (`header` and `body`) from `source` to the guest.
    public func appendICMP(_ link: GuestLink, source: IPv4Address, destination: IPv4Address,
                           header: ICMPv4Header, body: UnsafeRawBufferPointer) {
        appendPacket(link, source: .v4(source), destination: .v4(destination), protocol: .icmp, length: 8 + body.count) {
            header.emit(body: body, into: &$0)
        }
    }

    /// An ICMPv6 message from `source` to the guest: `type`, `code`, the
    /// four bytes after the checksum (`header`) and `body`.
    public func appendICMPv6(_ link: GuestLink, source: IPv6Address, destination: IPv6Address, type: ICMPv6Type,
                             code: UInt8 = 0, header: UInt32, body: UnsafeRawBufferPointer) {
        appendPacket(link, source: .v6(source), destination: .v6(destination), protocol: .icmpv6, length: 8 + body.count) {
            ICMPv6View.emit(type: type, code: code, header: header, body: body, source: source, destination: destination,
                            into: &$0)
        }
    }

    /// Why a destination is unreachable, in the words of both ICMPs.
    public enum Unreachable: Sendable, Equatable {
        case network, host, port, administrativelyProhibited
    }

    /// The most of a packet an ICMPv6 error quotes: the error fits the
    /// minimum IPv6 MTU (RFC 4443 §2.4(c)).
    static let maximumIPv6Quote = 1280 - IPv6View.headerLength - 8

    /// A destination unreachable from `source` to the guest at
    /// `destination`, quoting the start of the guest's packet (its IP
    /// header and at least 8 bytes after it): ICMP or ICMPv6 by family.
    public func appendUnreachable(_ link: GuestLink, source: IPAddress, destination: IPAddress, _ reason: Unreachable,
                                  quoting packet: UnsafeRawBufferPointer) {
        switch (source, destination) {
        case (.v4(let source), .v4(let destination)):
            let code = switch reason {
            case .network: ICMPv4UnreachableCode.network
            case .host: ICMPv4UnreachableCode.host
            case .port: ICMPv4UnreachableCode.port
            case .administrativelyProhibited: ICMPv4UnreachableCode.administrativelyProhibited
            }
            appendICMP(link, source: source, destination: destination,
                       header: ICMPv4Header(type: .destinationUnreachable, code: code), body: packet)
        default:
            let code = switch reason {
            case .network: ICMPv6UnreachableCode.noRoute
            case .host: ICMPv6UnreachableCode.address
            case .port: ICMPv6UnreachableCode.port
            case .administrativelyProhibited: ICMPv6UnreachableCode.administrativelyProhibited
            }
            appendICMPv6(link, source: source.asIPv6, destination: destination.asIPv6, type: .destinationUnreachable,
                         code: code, header: 0, body: UnsafeRawBufferPointer(rebasing: packet.prefix(Self.maximumIPv6Quote)))
        }
    }

    /// A transport packet of `length` bytes that `emit` writes: whole when
    /// it fits the MTU, else through `scratch` into fragments.
    private func appendPacket(_ link: GuestLink, source: IPAddress, destination: IPAddress, protocol: IPProtocol,
                              length: Int, emit: (inout [UInt8]) -> Void) {
        if Self.ipHeaderLength(source) + length <= mtu {
            let start = begin(link, source: source, destination: destination, protocol: `protocol`, payloadLength: length)
            emit(&storage)
            end(link, from: start)
            return
        }
        scratch.removeAll(keepingCapacity: true)
        emit(&scratch)
        appendFragments(link, source: source, destination: destination, protocol: `protocol`)
    }

    /// Splits `scratch` (a whole transport packet) into fragments of at most the MTU.
    private func appendFragments(_ link: GuestLink, source: IPAddress, destination: IPAddress, protocol: IPProtocol) {
        let headers = Self.ipHeaderLength(source) + (source.isIPv6 ? IPv6FragmentHeader.length : 0)
        let chunk = max(8, (mtu - headers) / 8 * 8)
        let identification = nextIdentification()
        var offset = 0
        while offset < scratch.count {
            let length = min(chunk, scratch.count - offset)
            let place = FragmentPlace(offset: offset, more: offset + length < scratch.count, identification: identification)
            let start = begin(link, source: source, destination: destination, protocol: `protocol`, payloadLength: length,
                              fragment: place)
            storage.append(contentsOf: scratch[offset..<offset + length])
            end(link, from: start)
            offset += length
        }
    }
}
