// The IPv4 addresses that are the proxy's host (its interfaces' addresses,
// from getifaddrs, and the prefixes of its `local` routes, from rtnetlink),
// which a guest may not reach directly: they lead to the same services as
// the host's loopback, which a guest reaches only through a translation
// (NATPolicy). Read again every few seconds, as interfaces and routes come
// and go.
import Glibc
import SovnetCore
import SovnetWire

/// This host's own IPv4 addresses, kept fresh.
struct HostAddresses {
    private(set) var addresses = HostAddressSet()
    private var readAt: ContinuousClock.Instant?
    static let refreshInterval: Duration = .seconds(2)

    /// The addresses, read again when the last reading is older than `refreshInterval`.
    mutating func current(now: ContinuousClock.Instant) -> HostAddressSet {
        if let readAt, now - readAt < Self.refreshInterval { return addresses }
        readAt = now
        let local = ((try? RouteNetlink())?.localRoutes() ?? []).map { HostAddressSet.LocalPrefix($0.0, length: $0.1) }
        addresses = HostAddressSet(addresses: Self.read(), prefixes: local)
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
