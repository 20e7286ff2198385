// Socket calls for endpoints: create, connect, bind and listen, accept, and
// the stale-socket probe that replaces "Address already in use" after a crash
// with either a silent clean-up (nobody listens) or a clear error (someone does).
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Opens a listening socket for `endpoint` (the stale-socket probe and the
/// mode included), for servers that run their own accept loop.
public func makeListeningSocket(_ endpoint: Endpoint, mode: mode_t) throws(LinkError) -> Int32 {
    try Sockets.listen(on: endpoint, mode: mode)
}

/// Opens a socket connected to `endpoint` (a stream endpoint: unix or TCP), for clients.
public func makeConnectedSocket(_ endpoint: Endpoint) throws(LinkError) -> Int32 {
    try Sockets.connect(to: endpoint)
}

enum Sockets {
    /// The socket type an endpoint uses.
    static func type(of endpoint: Endpoint) -> Int32 {
        switch endpoint {
        case .unixPacket: SocketType.sequencedPacket
        case .unixDatagram: SocketType.datagram
        default: SocketType.stream
        }
    }

    /// Opens a socket connected to `endpoint`.
    static func connect(to endpoint: Endpoint) throws(LinkError) -> Int32 {
        if case .tcp(let host, let port) = endpoint {
            return try connectTCP(host: host, port: port)
        }
        let fd = try open(endpoint)
        do throws(LinkError) {
            if case .unixDatagram = endpoint {
                // Autobind to an abstract address so the server can answer.
                var family = sa_family_t(AF_UNIX)
                let bound = withUnsafePointer(to: &family) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        systemBind(fd, $0, socklen_t(MemoryLayout<sa_family_t>.size))
                    }
                }
                guard bound == 0 else { throw LinkError.lastError("bind (autobind)") }
            }
            try withAddress(of: endpoint) { (address, length) throws(LinkError) in
                while systemConnect(fd, address, length) != 0 {
                    guard errno == EINTR else { throw LinkError.lastError("connect \(endpoint)") }
                }
            }
            return fd
        } catch {
            systemClose(fd)
            throw error
        }
    }

    /// Opens a socket bound to `endpoint`, listening unless it is a datagram
    /// socket. A unix socket path is created with `mode` atomically: the
    /// socket is bound under a temporary name, given its mode, then renamed.
    static func listen(on endpoint: Endpoint, mode: mode_t, backlog: Int32 = 128) throws(LinkError) -> Int32 {
        if let path = endpoint.path { try removeStaleSocket(at: path, type: type(of: endpoint)) }
        let fd = try open(endpoint)
        do throws(LinkError) {
            var one: Int32 = 1
            if case .tcp = endpoint {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            if let path = endpoint.path {
                let temporary = temporaryName(for: path)
                let bindable: Endpoint = .unix(path: temporary)
                try withAddress(of: bindable) { (address, length) throws(LinkError) in
                    guard systemBind(fd, address, length) == 0 else { throw LinkError.lastError("bind \(path)") }
                }
                guard chmod(temporary, mode) == 0, rename(temporary, path) == 0 else {
                    let error = LinkError.lastError("create \(path)")
                    unlink(temporary)
                    throw error
                }
            } else {
                try withAddress(of: endpoint) { (address, length) throws(LinkError) in
                    guard systemBind(fd, address, length) == 0 else { throw LinkError.lastError("bind \(endpoint)") }
                }
            }
            if type(of: endpoint) != SocketType.datagram {
                guard systemListen(fd, backlog) == 0 else { throw LinkError.lastError("listen \(endpoint)") }
            }
            return fd
        } catch {
            systemClose(fd)
            throw error
        }
    }

    /// Accepts one connection, retrying on EINTR.
    static func accept(_ fd: Int32) throws(LinkError) -> Int32 {
        while true {
            let connection = sovnet_accept_cloexec(fd)
            if connection >= 0 { return connection }
            guard errno == EINTR || errno == ECONNABORTED else { throw LinkError.lastError("accept") }
        }
    }

    /// Removes a socket file nobody listens on; refuses a live one or a non-socket.
    static func removeStaleSocket(at path: String, type: Int32) throws(LinkError) {
        var status = stat()
        guard lstat(path, &status) == 0 else {
            guard errno == ENOENT else { throw LinkError.lastError("stat \(path)") }
            return
        }
        guard hasFileType(status.st_mode, S_IFSOCK) else { throw LinkError.notASocket(path: path) }
        let probe = socket(AF_UNIX, type | SocketType.closeOnExec, 0)
        guard probe >= 0 else { throw LinkError.lastError("socket") }
        defer { systemClose(probe) }
        var result: Int32 = 0
        var probeError: Int32 = 0
        try withAddress(of: .unix(path: path)) { (address, length) in
            result = systemConnect(probe, address, length)
            probeError = errno
        }
        if result == 0 { throw LinkError.addressInUse(path: path) }
        guard probeError == ECONNREFUSED || probeError == ENOENT else {
            throw LinkError.system(operation: "probe \(path)", errno: .init(rawValue: probeError))
        }
        guard unlink(path) == 0 || errno == ENOENT else { throw LinkError.lastError("remove stale \(path)") }
    }

    private static func temporaryName(for path: String) -> String {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let name = ".\(path[slash...]).\(getpid())"
        let candidate = String(path[..<slash]) + name
        return candidate.utf8.count < 108 ? candidate : path + "~"
    }

    private static func open(_ endpoint: Endpoint) throws(LinkError) -> Int32 {
        let family: Int32
        switch endpoint {
        case .vsock: family = sovnet_af_vsock()
        case .unix, .unixPacket, .unixDatagram: family = AF_UNIX
        case .tcp(let host, _): family = host.contains(":") ? AF_INET6 : AF_INET
        case .stdio: throw LinkError.unsupported("stdio is not a socket")
        case .serial(let path): throw LinkError.unsupported("\(path) is a device, not a socket")
        }
        let fd = socket(family, type(of: endpoint) | SocketType.closeOnExec, 0)
        guard fd >= 0 else { throw LinkError.lastError("socket for \(endpoint)") }
        return fd
    }

    private static func connectTCP(host: String, port: UInt16) throws(LinkError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = SocketType.stream
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            throw LinkError.unsupported("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = LinkError.unsupported("no address for \(host)")
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            let fd = socket(current.pointee.ai_family, current.pointee.ai_socktype | SocketType.closeOnExec, 0)
            if fd >= 0 {
                if systemConnect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    return fd
                }
                lastError = LinkError.lastError("connect tcp://\(host):\(port)")
                systemClose(fd)
            }
            entry = current.pointee.ai_next
        }
        throw lastError
    }

    /// Calls `body` with the socket address of a unix, vsock or numeric TCP endpoint.
    static func withAddress<R>(
        of endpoint: Endpoint, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(LinkError) -> R
    ) throws(LinkError) -> R {
        var storage = sockaddr_storage()
        var length: socklen_t
        switch endpoint {
        case .unix(let path), .unixPacket(let path), .unixDatagram(let path):
            let bytes = Array(path.utf8)
            guard bytes.count < 108 else { throw LinkError.unsupported("socket path too long: \(path)") }
            length = withUnsafeMutableBytes(of: &storage) { raw in
                raw.storeBytes(of: sa_family_t(AF_UNIX), as: sa_family_t.self)
                let pathOffset = MemoryLayout<sa_family_t>.size
                for (index, byte) in bytes.enumerated() { raw[pathOffset + index] = byte }
                raw[pathOffset + bytes.count] = 0
                return socklen_t(pathOffset + bytes.count + 1)
            }
        case .vsock(let cid, let port, _):
            length = sovnet_sockaddr_vm(&storage, cid ?? sovnet_vmaddr_cid_any(), port)
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE
            hints.ai_socktype = SocketType.stream
            var list: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &list) == 0, let list else {
                throw LinkError.unsupported("listening needs a numeric address, not '\(host)'")
            }
            defer { freeaddrinfo(list) }
            length = list.pointee.ai_addrlen
            withUnsafeMutableBytes(of: &storage) { raw in
                raw.copyMemory(from: UnsafeRawBufferPointer(start: list.pointee.ai_addr, count: Int(length)))
            }
        case .stdio, .serial:
            throw LinkError.unsupported("\(endpoint) has no socket address")
        }
        return try withUnsafePointer(to: &storage) { (pointer) throws(LinkError) -> R in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(LinkError) -> R in
                try body(address, length)
            }
        }
    }
}
