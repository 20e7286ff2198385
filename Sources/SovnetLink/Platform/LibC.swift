// What differs between the C libraries sovnet is built against: glibc, and
// musl for Alpine guests (issue #19, docs/guest.md). Each file imports
// whichever the toolchain has:
//
//     #if canImport(Glibc)
//     import Glibc
//     #elseif canImport(Musl)
//     import Musl
//     #endif
//
// and what differs beyond the module's name is here:
// - glibc's headers declare the socket types as an enum (`SOCK_STREAM.rawValue`),
//   musl's as integers: `SocketType` has them as Int32 either way.
// - a call that a type's own method of the same name hides (`close(fd)`
//   inside a type with a `close()`) cannot be spelled `Glibc.close` without
//   tying the file to glibc: it is `systemClose(fd)`, and so on.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Socket types and flags for socket(2), as Int32 under either C library.
public enum SocketType {
    #if canImport(Glibc)
    public static let stream = Int32(SOCK_STREAM.rawValue)
    public static let datagram = Int32(SOCK_DGRAM.rawValue)
    public static let sequencedPacket = Int32(SOCK_SEQPACKET.rawValue)
    public static let raw = Int32(SOCK_RAW.rawValue)
    public static let closeOnExec = Int32(SOCK_CLOEXEC.rawValue)
    public static let nonBlocking = Int32(SOCK_NONBLOCK.rawValue)
    #else
    public static let stream = Int32(SOCK_STREAM)
    public static let datagram = Int32(SOCK_DGRAM)
    public static let sequencedPacket = Int32(SOCK_SEQPACKET)
    public static let raw = Int32(SOCK_RAW)
    public static let closeOnExec = Int32(SOCK_CLOEXEC)
    public static let nonBlocking = Int32(SOCK_NONBLOCK)
    #endif
}

/// close(2).
@discardableResult
public func systemClose(_ descriptor: Int32) -> Int32 { close(descriptor) }

/// read(2).
public func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}

/// write(2).
public func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(descriptor, buffer, count)
}

/// send(2).
public func systemSend(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int {
    send(descriptor, buffer, count, flags)
}

/// bind(2).
public func systemBind(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 {
    bind(descriptor, address, length)
}

/// connect(2).
public func systemConnect(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t) -> Int32 {
    connect(descriptor, address, length)
}

/// listen(2).
public func systemListen(_ descriptor: Int32, _ backlog: Int32) -> Int32 { listen(descriptor, backlog) }

/// open(2) without creating.
public func systemOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags) }

/// mount(2).
public func systemMount(_ source: String?, _ target: String, _ type: String?, _ flags: UInt, _ data: String?) -> Int32 {
    mount(source, target, type, flags, data)
}

/// The calling thread's errno.
public var systemErrno: Int32 { errno }
