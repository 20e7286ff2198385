// Small helpers over file descriptors shared by the framed connections and
// the tap device: retrying interrupted calls and waiting for writability.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif

enum Descriptor {
    /// Waits until `fd` is writable (the back-pressure path of `send`).
    static func waitWritable(_ fd: Int32) throws(LinkError) {
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        while poll(&poller, 1, -1) < 0 {
            guard errno == EINTR else { throw LinkError.lastError("poll") }
        }
    }

    /// Whether `fd` is a socket (sockets get MSG_NOSIGNAL; pipes get writev).
    static func isSocket(_ fd: Int32) -> Bool {
        var status = stat()
        return fstat(fd, &status) == 0 && hasFileType(status.st_mode, S_IFSOCK)
    }

    /// Sets or clears O_NONBLOCK.
    static func setNonBlocking(_ fd: Int32, _ on: Bool) throws(LinkError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK) == 0 else {
            throw LinkError.lastError("fcntl O_NONBLOCK")
        }
    }

    /// Writes what the kernel takes now of `vectors` without waiting, retrying
    /// EINTR; returns the bytes written (0 when the descriptor is full).
    static func writeSome(_ fd: Int32, _ vectors: UnsafeMutableBufferPointer<iovec>, isSocket: Bool) throws(LinkError) -> Int {
        while true {
            let written: Int
            if isSocket {
                var message = msghdr()
                message.msg_iov = vectors.baseAddress
                message.msg_iovlen = .init(vectors.count)
                written = sendmsg(fd, &message, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            } else {
                written = writev(fd, vectors.baseAddress, Int32(vectors.count))
            }
            if written >= 0 { return written }
            switch errno {
            case EINTR: continue
            case EAGAIN: return 0
            default: throw LinkError.lastError("write")
            }
        }
    }

    /// Writes every byte described by `vectors`, advancing through partial
    /// writes, retrying EINTR and waiting on EAGAIN.
    static func writeAll(_ fd: Int32, _ vectors: UnsafeMutableBufferPointer<iovec>, isSocket: Bool) throws(LinkError) {
        var first = 0
        while first < vectors.count {
            let pending = UnsafeMutableBufferPointer(rebasing: vectors[first...])
            let written: Int
            if isSocket {
                var message = msghdr()
                message.msg_iov = pending.baseAddress
                message.msg_iovlen = .init(pending.count)
                written = sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
            } else {
                written = writev(fd, pending.baseAddress, Int32(pending.count))
            }
            if written < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN: try waitWritable(fd)
                default: throw LinkError.lastError("write")
                }
                continue
            }
            var remaining = written
            while first < vectors.count, remaining >= vectors[first].iov_len {
                remaining -= vectors[first].iov_len
                first += 1
            }
            if remaining > 0 {
                vectors[first].iov_base += remaining
                vectors[first].iov_len -= remaining
            }
        }
    }
}
