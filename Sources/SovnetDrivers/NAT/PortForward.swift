// Port forwards from the host into a guest: `-ssh-port`, `--forward` and the
// API's /services/forwarder/expose. A forward listens on the host (TCP and
// UDP on 127.0.0.1 unless an address is given, or a unix socket) and relays
// each connection or datagram to a guest address and port, from the gateway.
// As in gvproxy, `:PORT` means every host address (0.0.0.0); the proxy's
// `--expose-loopback-only` confines forwards to 127.0.0.0/8 (and ::1)
// instead. Either end may be IPv6, written in brackets: `[::1]:8080`,
// `[fd00::5]:22`; the two ends need not be of one family.
import SovnetWire

/// One port forward, as gvproxy's API spells it.
public struct PortForward: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case tcp, udp, unix
    }

    public var kind: Kind
    /// `IP:PORT` for tcp and udp, a socket path for unix.
    public var local: String
    public var remote: IPAddress
    public var remotePort: UInt16

    /// Validates and normalises: `:PORT` becomes `0.0.0.0:PORT`.
    public init(kind: Kind, local: String, remote: String) throws(PortForwardError) {
        self.kind = kind
        guard let (address, port) = Self.split(remote), let remoteAddress = IPAddress(address), port > 0 else {
            throw PortForwardError("bad remote '\(remote)': want IP:PORT")
        }
        self.remote = remoteAddress
        remotePort = port
        self.local = try Self.normalizedLocal(kind: kind, local)
    }

    /// A local address as forwards are keyed by it: `:PORT` becomes
    /// `0.0.0.0:PORT` (every host address); a unix forward's path must be absolute.
    public static func normalizedLocal(kind: Kind, _ local: String) throws(PortForwardError) -> String {
        switch kind {
        case .unix:
            guard local.hasPrefix("/") else { throw PortForwardError("bad local '\(local)': a unix forward needs an absolute path") }
            return local
        case .tcp, .udp:
            guard let (host, port) = split(local) else {
                throw PortForwardError("bad local '\(local)': want IP:PORT or :PORT")
            }
            let address = host.isEmpty ? IPAddress.v4(.any) : IPAddress(host)
            guard let address else { throw PortForwardError("bad local address '\(host)': want an IPv4 or [IPv6] address") }
            return address.with(port: port)
        }
    }

    /// The local address and port of a tcp or udp forward.
    public var localAddress: (IPAddress, UInt16)? {
        guard kind != .unix, let (host, port) = Self.split(local), let address = IPAddress(host) else { return nil }
        return (address, port)
    }

    /// Whether the forward listens on every host address (of its family).
    public var listensOnEveryAddress: Bool {
        localAddress?.0 == .v4(.any) || localAddress?.0 == .v6(.any)
    }

    /// The forward as `--expose-loopback-only` allows it: every address
    /// becomes 127.0.0.1; another address outside 127.0.0.0/8 is refused.
    public func confinedToLoopback() throws(PortForwardError) -> PortForward {
        var confined = self
        confined.local = try Self.loopbackLocal(kind: kind, local)
        return confined
    }

    /// A normalised local address as `confinedToLoopback` makes it.
    public static func loopbackLocal(kind: Kind, _ local: String) throws(PortForwardError) -> String {
        guard kind != .unix, let (host, port) = split(local), let address = IPAddress(host) else { return local }
        switch address {
        case .v4(.any): return IPAddress.v4(IPv4Address(127, 0, 0, 1)).with(port: port)
        case .v6(.any): return IPAddress.v6(.loopback).with(port: port)
        default: break
        }
        let isLoopback = switch address {
        case .v4(let address): address.isLoopback
        case .v6(let address): address.isLoopback
        }
        guard isLoopback else {
            throw PortForwardError("\(local) is not a loopback address, and this proxy exposes on loopback only (--expose-loopback-only)")
        }
        return local
    }

    /// Parses `--forward` values: `tcp:[IP]:PORT=GUEST_IP:PORT`, `udp:…`,
    /// `unix:/PATH=GUEST_IP:PORT`; IPv6 addresses in brackets.
    public static func parse(_ text: String) throws(PortForwardError) -> PortForward {
        guard let colon = text.firstIndex(of: ":"), let equals = text.lastIndex(of: "="),
              let kind = Kind(rawValue: String(text[..<colon])) else {
            throw PortForwardError("bad forward '\(text)': want tcp:[IP]:PORT=GUEST_IP:PORT, udp:… or unix:/PATH=GUEST_IP:PORT")
        }
        return try PortForward(kind: kind, local: String(text[text.index(after: colon)..<equals]),
                               remote: String(text[text.index(after: equals)...]))
    }

    /// `HOST:PORT` or `[IPv6]:PORT` into the host (brackets removed) and the port.
    private static func split(_ text: String) -> (String, UInt16)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = text[..<colon]
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count >= 2 else { return nil }
            return (String(host.dropFirst().dropLast()), port)
        }
        guard !host.contains(":") else { return nil }
        return (String(host), port)
    }

    public var description: String { "\(kind):\(local)=\(remote.with(port: remotePort))" }
}

/// A port forward that cannot be made, with the reason.
public struct PortForwardError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
