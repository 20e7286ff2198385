// Endpoint URLs as gvisor-tap-vsock writes them, for both connecting and
// listening:
//
//   unix:///run/vm.sock          stream socket at a path
//   unixpacket:///run/bess.sock  seqpacket socket (bess framing)
//   unixgram:///run/vfkit.sock   datagram socket (vfkit framing)
//   vsock://2:1024/connect       vsock CID 2 port 1024, request path /connect
//   vsock://:1024                listen on port 1024 of any CID
//   tcp://127.0.0.1:7777         TCP, IPv4 or [IPv6]
//   stdio:                       standard input and output
//   serial:///dev/hvc1           a character device (virtio console port,
//                                tty, pty) carrying the `vm` framing; a
//                                sovnet extension (docs/wire-compatibility.md)

/// Where a framed connection goes or comes from.
public enum Endpoint: Hashable, Sendable, CustomStringConvertible {
    case unix(path: String)
    case unixPacket(path: String)
    case unixDatagram(path: String)
    /// A nil CID means "any" (listening only). The path is the `vm` request path.
    case vsock(cid: UInt32?, port: UInt32, path: String?)
    case tcp(host: String, port: UInt16)
    case stdio
    /// A character device the guest side opens (a virtio console port).
    case serial(path: String)

    /// Parses an endpoint URL; the error says what is wrong with it.
    public init(url: String) throws(EndpointError) {
        if url == "stdio:" || url == "stdio://" {
            self = .stdio
            return
        }
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw EndpointError(url: url, reason: "expected SCHEME://ADDRESS")
        }
        let scheme = url[..<colon].lowercased()
        let rest = String(url[colon...].dropFirst(3))
        switch scheme {
        case "unix", "unixpacket", "unixgram":
            guard rest.hasPrefix("/"), rest.count > 1 else {
                throw EndpointError(url: url, reason: "expected an absolute path, as in \(scheme):///run/vm.sock")
            }
            guard rest.utf8.count < 108 else {
                throw EndpointError(url: url, reason: "socket path longer than 107 bytes")
            }
            self = scheme == "unix" ? .unix(path: rest) : scheme == "unixpacket"
                ? .unixPacket(path: rest) : .unixDatagram(path: rest)
        case "vsock":
            let authority = rest.prefix { $0 != "/" }
            let path = rest.dropFirst(authority.count)
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let port = UInt32(parts[1]) else {
                throw EndpointError(url: url, reason: "expected vsock://CID:PORT or vsock://:PORT")
            }
            var cid: UInt32?
            if !parts[0].isEmpty {
                guard let value = UInt32(parts[0]) else { throw EndpointError(url: url, reason: "bad CID") }
                cid = value
            }
            self = .vsock(cid: cid, port: port, path: path.isEmpty ? nil : String(path))
        case "serial":
            guard rest.hasPrefix("/"), rest.count > 1 else {
                throw EndpointError(url: url, reason: "expected a device path, as in serial:///dev/hvc1")
            }
            self = .serial(path: rest)
        case "tcp":
            let authority = rest.prefix { $0 != "/" }
            guard let colon = authority.lastIndex(of: ":"), let port = UInt16(authority[authority.index(after: colon)...]) else {
                throw EndpointError(url: url, reason: "expected tcp://HOST:PORT")
            }
            var host = String(authority[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw EndpointError(url: url, reason: "missing host") }
            self = .tcp(host: host, port: port)
        default:
            throw EndpointError(url: url, reason: "unknown scheme '\(scheme)' (unix, unixpacket, unixgram, vsock, tcp, stdio, serial)")
        }
    }

    /// The socket path, for the endpoints that have one.
    public var path: String? {
        switch self {
        case .unix(let path), .unixPacket(let path), .unixDatagram(let path): path
        default: nil
        }
    }

    /// Whether it is a stream socket (unix, vsock or TCP).
    public var isStreamSocket: Bool {
        switch self {
        case .unix, .vsock, .tcp: true
        default: false
        }
    }

    /// The framing gvproxy uses on this kind of endpoint by default.
    public var defaultFraming: Framing {
        switch self {
        case .unixPacket: .bess
        case .unixDatagram: .vfkit
        case .stdio: .stdio
        default: .vm
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix://\(path)"
        case .unixPacket(let path): "unixpacket://\(path)"
        case .unixDatagram(let path): "unixgram://\(path)"
        case .vsock(let cid, let port, let path): "vsock://\(cid.map(String.init) ?? ""):\(port)\(path ?? "")"
        case .tcp(let host, let port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        case .stdio: "stdio:"
        case .serial(let path): "serial://\(path)"
        }
    }
}

/// An endpoint URL that cannot be used.
public struct EndpointError: Error, Equatable, Sendable, CustomStringConvertible {
    public let url: String
    public let reason: String
    public var description: String { "bad endpoint '\(url)': \(reason)" }
}
