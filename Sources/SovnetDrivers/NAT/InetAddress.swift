// IPv4 and IPv6 socket addresses and the socket options the NAT sets, in one place.
import CSovnetShim
import Glibc
import SovnetLink
import SovnetWire
import SystemPackage

enum InetAddress {
    /// A socket address for `address`:`port` (`sockaddr_in` or `sockaddr_in6`) and its length.
    static func make(_ address: IPAddress, _ port: UInt16) -> (sockaddr_storage, socklen_t) {
        var storage = sockaddr_storage()
        switch address {
        case .v4(let address):
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    $0.pointee.sin_family = sa_family_t(AF_INET)
                    $0.pointee.sin_port = port.bigEndian
                    $0.pointee.sin_addr.s_addr = address.rawValue.bigEndian
                }
            }
            return (storage, socklen_t(MemoryLayout<sockaddr_in>.size))
        case .v6(let address):
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    $0.pointee.sin6_family = sa_family_t(AF_INET6)
                    $0.pointee.sin6_port = port.bigEndian
                    var bytes: [UInt8] = []
                    address.append(to: &bytes)
                    withUnsafeMutableBytes(of: &$0.pointee.sin6_addr) { $0.copyBytes(from: bytes) }
                }
            }
            return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }

    /// The address and port of a socket address; nil for another family.
    static func parts(_ storage: sockaddr_storage) -> (IPAddress, UInt16)? {
        var storage = storage
        return withUnsafePointer(to: &storage) { pointer -> (IPAddress, UInt16)? in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    (.v4(IPv4Address(rawValue: UInt32(bigEndian: $0.pointee.sin_addr.s_addr))), UInt16(bigEndian: $0.pointee.sin_port))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    let parsed = withUnsafeBytes(of: address.pointee.sin6_addr) { bytes in
                        IPv6Address(high: bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) },
                                    low: bytes.suffix(8).reduce(0) { $0 << 8 | UInt64($1) })
                    }
                    return (.v6(parsed), UInt16(bigEndian: address.pointee.sin6_port))
                }
            default:
                return nil
            }
        }
    }

    /// connect(2) to `address`:`port`; 0 or an errno value.
    static func connect(_ fd: Int32, _ address: IPAddress, _ port: UInt16) -> Int32 {
        var (target, length) = make(address, port)
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        return result == 0 ? 0 : errno
    }

    /// bind(2) to `address`:`port`; 0 or an errno value.
    static func bind(_ fd: Int32, _ address: IPAddress, _ port: UInt16) -> Int32 {
        var (target, length) = make(address, port)
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        return result == 0 ? 0 : errno
    }

    /// sendto(2) of `payload` to `address`:`port`, not waiting.
    static func send(_ fd: Int32, _ payload: UnsafeRawBufferPointer, to address: IPAddress, _ port: UInt16) {
        var (target, length) = make(address, port)
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT), $0, length)
            }
        }
    }

    /// recvfrom(2) into `buffer`, not waiting: the byte count and the
    /// sender, or nil when nothing is waiting (or on an error).
    static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> (Int, IPAddress, UInt16)? {
        var sender = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = withUnsafeMutablePointer(to: &sender) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT), $0, &length)
            }
        }
        guard count >= 0, let (address, port) = parts(sender) else { return nil }
        return (count, address, port)
    }

    /// The local address a socket is bound to.
    static func local(_ fd: Int32) -> (IPAddress, UInt16)? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? parts(address) : nil
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) -> Bool {
        var value = value
        return setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    static func option(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, level, name, &value, &length) == 0 ? value : nil
    }

    /// A non-blocking, close-on-exec socket of `address`'s family, or an errno value.
    static func socket(for address: IPAddress, _ type: Int32, _ protocol: Int32 = 0) -> Result<Int32, Errno> {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = Glibc.socket(family, type | SocketType.nonBlocking | SocketType.closeOnExec, `protocol`)
        return fd >= 0 ? .success(fd) : .failure(Errno(rawValue: errno))
    }
}
