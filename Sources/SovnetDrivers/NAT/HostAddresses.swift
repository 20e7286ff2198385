// The IPv4 addresses of the proxy's own interfaces (getifaddrs), which a
// guest may not reach directly: they lead to the same services as the
// host's loopback, which a guest reaches only through a translation
// (NATPolicy). Read again every few seconds, as interfaces come and go.
import Glibc
import SovnetWire

/// This host's IPv4 interface addresses, kept fresh.
struct HostAddresses {
    private(set) var addresses: Set<IPv4Address> = []
    private var readAt: ContinuousClock.Instant?
    static let refreshInterval: Duration = .seconds(2)

    /// The addresses, read again when the last reading is older than `refreshInterval`.
    mutating func current(now: ContinuousClock.Instant) -> Set<IPv4Address> {
        if let readAt, now - readAt < Self.refreshInterval { return addresses }
        readAt = now
        addresses = Self.read()
        return addresses
    }

    /// Every IPv4 address on an interface now.
    static func read() -> Set<IPv4Address> {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var found: Set<IPv4Address> = []
        var entry = list
        while let current = entry {
            if let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) {
                let raw = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                found.insert(IPv4Address(rawValue: UInt32(bigEndian: raw)))
            }
            entry = current.pointee.ifa_next
        }
        return found
    }
}
