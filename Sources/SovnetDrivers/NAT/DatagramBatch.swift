// Datagrams read from one socket with one recvmmsg(2): up to `capacity` at
// a time, each into its own 64 KiB slot (the buffers are allocated once and
// only touched as far as datagrams fill them). A batch that comes back short
// means the socket is empty, so no further call has to find that out; a full
// one leaves the rest to the next readiness report (the NAT's datagram
// sockets are level-triggered).
import CSovnetShim
import Glibc

/// One socket's datagrams, read in a batch.
final class DatagramBatch {
    /// The most datagrams one read takes.
    let capacity: Int
    /// The largest datagram a slot holds: UDP's own limit.
    static let slotSize = 65_536
    private let slots: UnsafeMutablePointer<sovnet_mmsg>
    private let buffers: UnsafeMutableRawPointer

    init(capacity: Int = 16) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        buffers = .allocate(byteCount: Self.slotSize * capacity, alignment: 16)
        for index in 0..<capacity {
            slots[index].iov = iovec(iov_base: buffers + index * Self.slotSize, iov_len: Self.slotSize)
        }
    }

    deinit {
        slots.deallocate()
        buffers.deallocate()
    }

    /// What one read found.
    enum Outcome {
        /// This many datagrams (at least one), readable by index.
        case received(Int)
        /// The read failed with this errno value (EAGAIN: there was none).
        case failed(Int32)
    }

    /// Reads what `descriptor` has, up to `capacity` datagrams, without waiting.
    func receive(_ descriptor: Int32) -> Outcome {
        var count: Int32
        repeat {
            count = sovnet_recvmmsg(descriptor, slots, UInt32(capacity), Int32(MSG_DONTWAIT))
        } while count < 0 && errno == EINTR
        return count < 0 ? .failed(errno) : .received(Int(count))
    }

    /// The payload of datagram `index` of the last batch.
    subscript(index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffers + index * Self.slotSize, count: Int(slots[index].length))
    }
}
