// The host's resolvers, as /etc/resolv.conf names them, followed as it
// changes. NetworkManager, systemd-resolved and VPN clients replace the file
// rather than edit it: they write a new file and rename it over the old one,
// or point the /etc/resolv.conf symlink elsewhere. So the watcher looks at
// the path as `stat(2)` sees it through any symlinks, once a second: device,
// inode, size and change time; when any differ it reads the file again, and
// reports it only if the nameservers or search domains are not what they were.
import CSovnetShim
import Glibc
import SovnetLink
import SovnetWire
import SystemPackage

/// A resolver's address: IPv4 or IPv6 (with a scope for link-local), and a port.
public struct ResolverAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address as text, without brackets: `10.0.0.1`, `fd00::53`, `fe80::1%eth0`.
    public let host: String
    public let port: UInt16
    public let isIPv6: Bool

    public init(_ address: IPv4Address, port: UInt16 = 53) {
        host = address.description
        self.port = port
        isIPv6 = false
    }

    /// Parses `IP`, `IP:PORT`, `IPv6`, `[IPv6]:PORT` (an IPv6 address may carry `%SCOPE`).
    public init?(_ text: String, defaultPort: UInt16 = 53) {
        var host = Substring(text)
        var port = defaultPort
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = UInt16(after.dropFirst()), value > 0 else { return nil }
                port = value
            }
            host = host[host.index(after: host.startIndex)..<close]
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            guard let value = UInt16(host[host.index(after: colon)...]), value > 0 else { return nil }
            port = value
            host = host[..<colon]
        }
        if IPv4Address(host) != nil {
            isIPv6 = false
        } else {
            let address = host.split(separator: "%", maxSplits: 1).first.map(String.init) ?? ""
            var bytes = in6_addr()
            guard inet_pton(AF_INET6, address, &bytes) == 1 else { return nil }
            isIPv6 = true
        }
        self.host = String(host)
        self.port = port
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// A UDP socket connected to the resolver, so that only its answers arrive on it; or an errno value.
    public func connectedUDPSocket() -> Result<Int32, Errno> {
        var hints = addrinfo()
        hints.ai_family = isIPv6 ? AF_INET6 : AF_INET
        hints.ai_socktype = SocketType.datagram
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, "\(port)", &hints, &found) == 0, let info = found else { return .failure(Errno(rawValue: EINVAL)) }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, SocketType.datagram | SocketType.closeOnExec, 0)
        guard fd >= 0 else { return .failure(Errno(rawValue: errno)) }
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = errno
            close(fd)
            return .failure(Errno(rawValue: error))
        }
        return .success(fd)
    }
}

/// What a resolv.conf file says that the proxy uses.
public struct HostResolvConf: Equatable, Sendable {
    public var nameservers: [ResolverAddress] = []
    public var searchDomains: [DNSName] = []

    public init(nameservers: [ResolverAddress] = [], searchDomains: [DNSName] = []) {
        self.nameservers = nameservers
        self.searchDomains = searchDomains
    }

    /// Reads `nameserver` lines (IPv4 and IPv6, port 53) and the last
    /// `search` or `domain` line, as the C library does.
    public init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = words.first, !keyword.hasPrefix("#"), !keyword.hasPrefix(";") else { continue }
            switch keyword {
            case "nameserver" where words.count >= 2:
                if let address = ResolverAddress(String(words[1])), !nameservers.contains(address) { nameservers.append(address) }
            case "search", "domain":
                searchDomains = words.dropFirst().prefix(6).map { DNSName(String($0)) }
            default:
                break
            }
        }
    }
}

/// Follows a resolv.conf path through replacements and relinks.
public struct ResolvConfWatcher {
    public let path: String
    private var stamp: [Int] = []
    public private(set) var current: HostResolvConf

    /// Reads `path` now.
    public init(path: String) {
        self.path = path
        current = HostResolvConf()
        _ = poll()
    }

    /// The file's new content when it changed in what matters, else nil.
    public mutating func poll() -> HostResolvConf? {
        var info = stat()
        let now = stat(path, &info) == 0
            ? [Int(info.st_dev), Int(info.st_ino), Int(info.st_size), info.st_ctim.tv_sec, info.st_ctim.tv_nsec,
               info.st_mtim.tv_sec, info.st_mtim.tv_nsec]
            : []
        guard now != stamp else { return nil }
        stamp = now
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        var text = ""
        if fd >= 0 {
            defer { close(fd) }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while bytes.count < 1 << 16 {
                let count = read(fd, &buffer, buffer.count)
                guard count > 0 else { break }
                bytes += buffer[..<count]
            }
            text = String(decoding: bytes, as: UTF8.self)
        }
        let parsed = HostResolvConf(parsing: text)
        guard parsed != current else { return nil }
        current = parsed
        return parsed
    }
}
