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
//   musl's as integers: `SocketType` has them as Int32 either way (`cInteger`).
// - Embedded Swift has no Glibc module: the guest side's files import the C
//   library through CSovnetShim there (sovnet_libc.h); what the Glibc
//   module adds in Swift (errno, environ, CommandLine, fcntl, which is
//   variadic in C) is at the end of this file, and open(2), variadic too,
//   is `systemOpen` in every build.
// - a call that a type's own method of the same name hides (`close(fd)`
//   inside a type with a `close()`) cannot be spelled `Glibc.close` without
//   tying the file to glibc: it is `systemClose(fd)`, and so on.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif

/// Socket types and flags for socket(2), as Int32 under either C library.
public enum SocketType {
    public static let stream: Int32 = cInteger(SOCK_STREAM)
    public static let datagram: Int32 = cInteger(SOCK_DGRAM)
    public static let sequencedPacket: Int32 = cInteger(SOCK_SEQPACKET)
    public static let raw: Int32 = cInteger(SOCK_RAW)
    public static let closeOnExec: Int32 = cInteger(SOCK_CLOEXEC)
    public static let nonBlocking: Int32 = cInteger(SOCK_NONBLOCK)
}

/// A constant that glibc's headers declare as an enum case and musl's as an integer, as an integer.
func cInteger<Constant: RawRepresentable, Result: BinaryInteger>(_ constant: Constant) -> Result
where Constant.RawValue: BinaryInteger {
    Result(truncatingIfNeeded: constant.rawValue)
}

/// A constant that glibc's headers declare as an enum case and musl's as an integer, as an integer.
func cInteger<Constant: BinaryInteger, Result: BinaryInteger>(_ constant: Constant) -> Result {
    Result(truncatingIfNeeded: constant)
}

#if hasFeature(Embedded)
/// S_IFMT, S_IFSOCK and the like: C's int, the Glibc module's mode_t.
public typealias FileTypeBits = Int32
#else
/// S_IFMT, S_IFSOCK and the like: C's int, the Glibc module's mode_t.
public typealias FileTypeBits = mode_t
#endif

/// Whether a stat(2) mode is of the file type `type` (S_IFSOCK, S_IFCHR, …).
public func hasFileType(_ mode: mode_t, _ type: FileTypeBits) -> Bool {
    let mask: FileTypeBits = S_IFMT
    return mode & mode_t(truncatingIfNeeded: mask) == mode_t(truncatingIfNeeded: type)
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

/// open(2); `mode` is used when `flags` has O_CREAT.
public func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    #if hasFeature(Embedded)
    sovnet_open(path, flags, mode)
    #else
    open(path, flags, mode)
    #endif
}

/// mount(2).
public func systemMount(_ source: String?, _ target: String, _ type: String?, _ flags: UInt, _ data: String?) -> Int32 {
    mount(source, target, type, flags, data)
}

/// The calling thread's errno.
public var systemErrno: Int32 { errno }

#if hasFeature(Embedded)
/// The calling thread's errno.
public var errno: Int32 {
    get { sovnet_errno() }
    set { sovnet_set_errno(newValue) }
}

/// The environment, as `KEY=value` strings ending in a null pointer.
public var environ: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
    sovnet_environment()
}

/// The command line, read as the Swift runtime reads it on Linux: from
/// /proc/self/cmdline (empty when /proc is not mounted). Embedded Swift has
/// no CommandLine of its own.
public enum CommandLine {
    public static let arguments: [String] = {
        let descriptor = systemOpen("/proc/self/cmdline", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
    }()
}

/// fcntl(2) for a command without an argument.
public func fcntl(_ descriptor: Int32, _ command: Int32) -> Int32 {
    sovnet_fcntl(descriptor, command, 0)
}

/// fcntl(2) with an integer argument.
public func fcntl(_ descriptor: Int32, _ command: Int32, _ argument: Int32) -> Int32 {
    sovnet_fcntl(descriptor, command, argument)
}
#endif
