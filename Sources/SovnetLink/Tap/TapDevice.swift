// A Linux tap device (IFF_TAP | IFF_NO_PI): every read(2) returns one
// Ethernet frame the kernel sent out of the interface, and every write(2)
// injects one frame into it. Creating one needs CAP_NET_ADMIN. Bringing the
// link up and setting addresses is rtnetlink's job, not this type's.
//
// With virtio-net headers (IFF_VNET_HDR) each frame read or written starts
// with the 10-byte header (`VirtioNetHeader`); `setOffload(true)` then lets
// the kernel hand over TCP superframes of up to 64 KiB whose checksums are
// left to complete, which is how a guest's TCP reaches the proxy without
// being cut into segments and summed on the way.
//
// Frames of one `receive` are read back to back into one buffer, each read
// given room for the largest frame, so small frames pack many to a batch
// and the frames of a batch stay valid until the next `receive`.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SovnetWire

/// An open tap interface.
public final class TapDevice: FrameEndpoint {
    /// The interface name the kernel gave it.
    public let name: String
    public let readDescriptor: Int32
    /// Largest frame read (its virtio-net header aside); longer frames are cut by the kernel and dropped here.
    public let maximumFrameLength: Int
    /// Whether frames come and go with a virtio-net header in front.
    public let virtioHeaders: Bool
    /// Frames per receive call at most.
    public let batch: Int
    /// Frames read but not delivered because of their length.
    public private(set) var drops = DropCounters()
    private let buffer: UnsafeMutableRawPointer
    private let capacity: Int
    /// Room each read is given: the largest frame, with its header.
    private let readSize: Int
    private var closed = false

    /// A superframe's largest size: an IPv4 packet of 64 KiB and its Ethernet header.
    static let largestSuperframe = 65_535 + 18

    /// Opens (creating if needed) the tap interface `name`, non-blocking.
    public init(name: String, maximumFrameLength: Int = FrameTransport.defaultMaximumFrameLength,
                virtioHeaders: Bool = false) throws(LinkError) {
        let fd = systemOpen("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw LinkError.lastError("open /dev/net/tun") }
        var actual = [CChar](repeating: 0, count: 16)
        guard sovnet_tap_attach(fd, name, &actual, virtioHeaders ? 1 : 0) == 0 else {
            let error = LinkError.lastError("TUNSETIFF \(name)")
            systemClose(fd)
            throw error
        }
        do throws(LinkError) {
            try Descriptor.setNonBlocking(fd, true)
        } catch {
            systemClose(fd)
            throw error
        }
        self.name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        readDescriptor = fd
        self.maximumFrameLength = maximumFrameLength
        self.virtioHeaders = virtioHeaders
        readSize = virtioHeaders ? VirtioNetHeader.size + max(maximumFrameLength, Self.largestSuperframe) : maximumFrameLength + 1
        capacity = max(256 * 1024, 4 * readSize)
        batch = 256
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        close()
        buffer.deallocate()
    }

    /// Lets the kernel hand over superframes and unfinished checksums (`on`),
    /// or has it segment and checksum every frame (virtio-net headers only).
    public func setOffload(_ on: Bool) throws(LinkError) {
        guard virtioHeaders else { throw LinkError.unsupported("\(name) was opened without virtio-net headers") }
        guard sovnet_tap_set_offload(readDescriptor, on ? 1 : 0) == 0 else { throw LinkError.lastError("TUNSETOFFLOAD \(name)") }
    }

    /// The interface's hardware address.
    public func macAddress() throws(LinkError) -> MACAddress {
        var bytes = [UInt8](repeating: 0, count: 6)
        guard sovnet_get_hwaddr(name, &bytes) == 0 else { throw LinkError.lastError("SIOCGIFHWADDR \(name)") }
        return MACAddress(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
    }

    /// Sets the interface's hardware address.
    public func setMACAddress(_ address: MACAddress) throws(LinkError) {
        guard sovnet_set_hwaddr(name, address.octets) == 0 else { throw LinkError.lastError("SIOCSIFHWADDR \(name)") }
    }

    /// The interface's MTU.
    public func mtu() throws(LinkError) -> Int {
        var value: Int32 = 0
        guard sovnet_get_mtu(name, &value) == 0 else { throw LinkError.lastError("SIOCGIFMTU \(name)") }
        return Int(value)
    }

    /// Reads frames until none is ready, the batch is full or the buffer is.
    /// With virtio-net headers, each frame handed over starts with its header.
    public func receive(_ body: (UnsafeRawBufferPointer) throws(LinkError) -> Void) throws(LinkError) -> ReceiveStatus {
        var frames = 0
        var offset = 0
        let headerLength = virtioHeaders ? VirtioNetHeader.size : 0
        while frames < batch, capacity - offset >= readSize {
            let slot = buffer + offset
            let count = read(readDescriptor, slot, readSize)
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return frames == 0 ? .wouldBlock : .frames(frames) }
                throw LinkError.lastError("read \(name)")
            }
            if count < headerLength + 14 {
                drops.runt += 1
                continue
            }
            if count - headerLength > maximumFrameLength, !virtioHeaders || count == readSize {
                drops.oversized += 1
                continue
            }
            frames += 1
            offset += (count + 15) & ~15
            try body(UnsafeRawBufferPointer(start: slot, count: count))
        }
        return .frames(frames)
    }

    /// Writes each frame; a tap takes one frame per write. With virtio-net
    /// headers, each frame must start with its header. A frame the kernel
    /// refuses (EINVAL) is counted in `drops.refused`; only a failing tap throws.
    public func send(_ frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        for frame in frames {
            try deliver { write(readDescriptor, frame.baseAddress, frame.count) }
        }
    }

    /// Writes frames that carry no virtio-net header: with headers on, each
    /// gets a plain one in front (a two-part write, nothing copied).
    public func send(plain frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        guard virtioHeaders else { return try send(frames) }
        try VirtioNetHeader.plain.withRawBytes { (header) throws(LinkError) in
            var vectors = [iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count),
                           iovec(iov_base: nil, iov_len: 0)]
            for frame in frames {
                vectors[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
                try deliver { writev(readDescriptor, vectors, 2) }
            }
        }
    }

    /// Repeats one frame's write until the tap takes it; a frame the kernel
    /// refuses is counted and skipped.
    private func deliver(_ write: () -> Int) throws(LinkError) {
        while write() < 0 {
            switch errno {
            case EINTR: continue
            case EAGAIN: try Descriptor.waitWritable(readDescriptor)
            case EINVAL:
                drops.refused += 1
                return
            default: throw LinkError.lastError("write \(name)")
            }
        }
    }

    /// A tap takes frames as fast as the kernel queues them; queueing is sending.
    public func enqueue(_ frames: [UnsafeRawBufferPointer]) throws(LinkError) {
        try send(frames)
    }

    public func flushBacklog() throws(LinkError) {}
    public var hasBacklog: Bool { false }
    public var sendDescriptor: Int32 { readDescriptor }

    public func close() {
        guard !closed else { return }
        closed = true
        systemClose(readDescriptor)
    }
}
