// A Linux tap device (IFF_TAP | IFF_NO_PI): every read(2) returns one
// Ethernet frame the kernel sent out of the interface, and every write(2)
// injects one frame into it. Creating one needs CAP_NET_ADMIN. Bringing the
// link up and setting addresses is rtnetlink's job, not this type's.
import CSovnetShim
import Glibc
import SovnetWire

/// An open tap interface.
public final class TapDevice: FrameEndpoint {
    /// The interface name the kernel gave it.
    public let name: String
    public let readDescriptor: Int32
    /// Largest frame read; longer frames are cut by the kernel and dropped here.
    public let maximumFrameLength: Int
    /// Frames per receive call at most.
    public let batch: Int
    /// Frames read but not delivered because of their length.
    public private(set) var drops = DropCounters()
    /// `batch` slots of `slotSize` bytes: each frame of a batch has its own,
    /// so all stay valid until the next `receive`.
    private let buffer: UnsafeMutableRawPointer
    private let slotSize: Int
    private var closed = false

    /// Opens (creating if needed) the tap interface `name`, non-blocking.
    public init(name: String, maximumFrameLength: Int = FrameTransport.defaultMaximumFrameLength) throws(LinkError) {
        let fd = Glibc.open("/dev/net/tun", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw LinkError.lastError("open /dev/net/tun") }
        var actual = [CChar](repeating: 0, count: 16)
        guard sovnet_tap_attach(fd, name, &actual) == 0 else {
            let error = LinkError.lastError("TUNSETIFF \(name)")
            Glibc.close(fd)
            throw error
        }
        do throws(LinkError) {
            try Descriptor.setNonBlocking(fd, true)
        } catch {
            Glibc.close(fd)
            throw error
        }
        self.name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        readDescriptor = fd
        self.maximumFrameLength = maximumFrameLength
        slotSize = maximumFrameLength + 1
        batch = max(4, min(64, 256 * 1024 / slotSize))
        buffer = .allocate(byteCount: slotSize * batch, alignment: 16)
    }

    deinit {
        close()
        buffer.deallocate()
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

    /// Reads frames until none is ready or `batch` were read.
    public func receive(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> ReceiveStatus {
        var frames = 0
        while frames < batch {
            let slot = buffer + frames * slotSize
            let count = read(readDescriptor, slot, slotSize)
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return frames == 0 ? .wouldBlock : .frames(frames) }
                throw LinkError.lastError("read \(name)")
            }
            if count < 14 {
                drops.runt += 1
                continue
            }
            if count > maximumFrameLength {
                drops.oversized += 1
                continue
            }
            frames += 1
            try body(UnsafeRawBufferPointer(start: slot, count: count))
        }
        return .frames(frames)
    }

    /// Writes each frame; a tap takes one frame per write.
    public func send(_ frames: [UnsafeRawBufferPointer]) throws {
        for frame in frames {
            while write(readDescriptor, frame.baseAddress, frame.count) < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN: try Descriptor.waitWritable(readDescriptor)
                default: throw LinkError.lastError("write \(name)")
                }
            }
        }
    }

    /// A tap takes frames as fast as the kernel queues them; queueing is sending.
    public func enqueue(_ frames: [UnsafeRawBufferPointer]) throws {
        try send(frames)
    }

    public func flushBacklog() throws {}
    public var hasBacklog: Bool { false }
    public var sendDescriptor: Int32 { readDescriptor }

    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(readDescriptor)
    }
}
