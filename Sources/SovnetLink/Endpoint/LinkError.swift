#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A failure of a socket, device or framed connection.
public enum LinkError: Error, Equatable, CustomStringConvertible {
    /// A system call failed.
    case system(operation: String, errno: Errno)
    /// The peer broke the framing; the connection was closed.
    case framing(FramingError)
    /// A live process is listening on the socket path.
    case addressInUse(path: String)
    /// Something that is not a socket is at the path.
    case notASocket(path: String)
    case endpoint(EndpointError)
    /// The endpoint cannot be used that way (listening on stdio, say).
    case unsupported(String)

    public var description: String {
        switch self {
        case .system(let operation, let errno): "\(operation): \(errno)"
        case .framing(let error): "framing: \(error)"
        case .addressInUse(let path): "\(path) is in use: another process is listening on it"
        case .notASocket(let path): "\(path) exists and is not a socket; refusing to remove it"
        case .endpoint(let error): error.description
        case .unsupported(let what): what
        }
    }

    /// The error of the last failed system call.
    static func lastError(_ operation: String) -> LinkError {
        .system(operation: operation, errno: Errno.current)
    }
}

extension Errno {
    static var current: Errno { Errno(rawValue: systemErrno) }
}
