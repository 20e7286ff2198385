#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetFraming

/// A failure of a socket, device or framed connection.
public enum LinkError: Error, Equatable, CustomStringConvertible {
    /// A system call failed.
    case system(operation: String, errno: ErrorNumber)
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
        .system(operation: operation, errno: ErrorNumber(rawValue: systemErrno))
    }
}

extension LinkError: FramingErrorCarrying {
    public init(framing: FramingError) {
        self = .framing(framing)
    }
}

/// An errno value, described as strerror(3) describes it.
public struct ErrorNumber: RawRepresentable, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    public var description: String {
        guard let text = strerror(rawValue) else { return "error \(rawValue)" }
        return String(cString: text)
    }
}
