// IPv4 socket addresses and the socket options the NAT sets, in one place.
import Glibc
import SovnetWire
import SystemPackage

enum InetAddress {
    /// A `sockaddr_in` for `address`:`port`.
    static func make(_ address: IPv4Address, _ port: UInt16) -> sockaddr_in {
        var result = sockaddr_in()
        result.sin_family = sa_family_t(AF_INET)
        result.sin_port = port.bigEndian
        result.sin_addr.s_addr = address.rawValue.bigEndian
        return result
    }

    /// The address and port of a `sockaddr_in`.
    static func parts(_ address: sockaddr_in) -> (IPv4Address, UInt16) {
        (IPv4Address(rawValue: UInt32(bigEndian: address.sin_addr.s_addr)), UInt16(bigEndian: address.sin_port))
    }

    /// connect(2) to `address`:`port`; 0 or an errno value.
    static func connect(_ fd: Int32, _ address: IPv4Address, _ port: UInt16) -> Int32 {
        var target = make(address, port)
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0 ? 0 : errno
    }

    /// bind(2) to `address`:`port`; 0 or an errno value.
    static func bind(_ fd: Int32, _ address: IPv4Address, _ port: UInt16) -> Int32 {
        var target = make(address, port)
        let result = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0 ? 0 : errno
    }

    /// The local address a socket is bound to.
    static func local(_ fd: Int32) -> (IPv4Address, UInt16)? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
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

    /// A non-blocking, close-on-exec socket, or an errno value.
    static func socket(_ type: __socket_type, _ protocol: Int32 = 0) -> Result<Int32, Errno> {
        let fd = Glibc.socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), `protocol`)
        return fd >= 0 ? .success(fd) : .failure(Errno(rawValue: errno))
    }
}
