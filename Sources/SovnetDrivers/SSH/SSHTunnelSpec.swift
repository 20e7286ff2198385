// What one unix socket forward over SSH is, as gvproxy's two ways of asking
// spell it: the flags `-forward-sock HOST.sock -forward-dest GUEST.sock
// -forward-user USER -forward-identity KEY` (to the guest's sshd at the
// device address, port 22), and an expose whose remote is
// `ssh-tunnel://USER@ADDR[:PORT]/GUEST/PATH?key=FILE[&passphrase=…]`.
import SovnetWire

/// A host unix socket forwarded to a unix socket inside a guest, over SSH.
public struct SSHTunnelSpec: Sendable, Equatable, CustomStringConvertible {
    /// The socket the proxy listens on, on the host.
    public var socket: String
    public var user: String
    /// The guest's sshd, inside the virtual network.
    public var address: IPv4Address
    public var port: UInt16
    /// The socket inside the guest the connections go to.
    public var destination: String
    /// The private key (OpenSSH or PEM format, any type `ssh` reads).
    public var identity: String
    /// The key's passphrase, when it has one.
    public var passphrase: String?

    public init(socket: String, user: String, address: IPv4Address, port: UInt16 = 22, destination: String,
                identity: String, passphrase: String? = nil) {
        self.socket = socket
        self.user = user
        self.address = address
        self.port = port
        self.destination = destination
        self.identity = identity
        self.passphrase = passphrase
    }

    /// Parses an `ssh-tunnel://` remote for the host socket `socket`.
    public init(socket: String, url: String) throws(PortForwardError) {
        let scheme = "ssh-tunnel://"
        guard url.hasPrefix(scheme) else { throw PortForwardError("bad remote '\(url)': want \(scheme)USER@ADDR[:PORT]/PATH?key=FILE") }
        var rest = Substring(url.dropFirst(scheme.count))
        var query: [String: String] = [:]
        if let mark = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: mark)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let key = Self.percentDecoded(parts[0]), let value = Self.percentDecoded(parts[1]) else {
                    throw PortForwardError("bad query '\(pair)' in '\(url)'")
                }
                query[key] = value
            }
            rest = rest[..<mark]
        }
        guard let at = rest.firstIndex(of: "@"), let slash = rest[at...].firstIndex(of: "/"),
              let user = Self.percentDecoded(rest[..<at]), !user.isEmpty else {
            throw PortForwardError("bad remote '\(url)': want \(scheme)USER@ADDR[:PORT]/PATH?key=FILE")
        }
        let hostPart = rest[rest.index(after: at)..<slash]
        let hostAndPort = hostPart.split(separator: ":", maxSplits: 1)
        guard let first = hostAndPort.first, let address = IPv4Address(first) else {
            throw PortForwardError("bad address '\(hostPart)' in '\(url)': want an IPv4 address in the virtual network")
        }
        var port: UInt16 = 22
        if hostAndPort.count == 2 {
            guard let value = UInt16(hostAndPort[1]), value > 0 else { throw PortForwardError("bad port '\(hostAndPort[1])' in '\(url)'") }
            port = value
        }
        guard let destination = Self.percentDecoded(rest[slash...]), destination.count > 1 else {
            throw PortForwardError("bad remote '\(url)': no socket path inside the guest")
        }
        guard let identity = query["key"], !identity.isEmpty else { throw PortForwardError("'\(url)' needs ?key=PRIVATE_KEY_FILE") }
        let unknown = Set(query.keys).subtracting(["key", "passphrase"])
        guard unknown.isEmpty else { throw PortForwardError("unknown parameter '\(unknown.sorted()[0])' in '\(url)'") }
        self.init(socket: socket, user: user, address: address, port: port, destination: destination, identity: identity,
                  passphrase: query["passphrase"])
    }

    /// The remote as `/services/forwarder/all` lists it: the passphrase left out.
    public var remote: String {
        "ssh-tunnel://\(user)@\(address):\(port)\(destination)?key=\(identity)"
    }

    public var description: String { "\(socket) → \(user)@\(address):\(port):\(destination)" }

    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let high = utf8.index(after: index)
                guard high < utf8.endIndex, utf8.index(after: high) < utf8.endIndex,
                      let value = UInt8(String(decoding: [utf8[high], utf8[utf8.index(after: high)]], as: UTF8.self), radix: 16) else {
                    return nil
                }
                bytes.append(value)
                index = utf8.index(high, offsetBy: 2)
            } else {
                bytes.append(byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
