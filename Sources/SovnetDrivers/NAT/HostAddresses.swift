// The addresses that are the proxy's host (its interfaces' IPv4 and IPv6
// addresses, from getifaddrs, and the prefixes of its IPv4 `local` routes, from rtnetlink),
// which a guest may not reach directly: they lead to the same services as
// the host's loopback, which a guest reaches only through a translation
// (NATPolicy). Read again every few seconds, as interfaces and routes come
// and go.
import Glibc
import SovnetCore
import SovnetGuest
import SovnetWire

/// This host's own addresses, kept fresh.
struct HostAddresses {
    private(set) var addresses = HostAddressSet()
    private var readAt: ContinuousClock.Instant?
    static let refreshInterval: Duration = .seconds(2)

    /// The addresses, read again when the last reading is older than `refreshInterval`.
    mutating func current(now: ContinuousClock.Instant) -> HostAddressSet {
        if let readAt, now - readAt < Self.refreshInterval { return addresses }
        readAt = now
        let local = ((try? RouteNetlink())?.localRoutes() ?? []).map { HostAddressSet.LocalPrefix($0.0, length: $0.1) }
        let (v4, v6) = Self.read()
        addresses = HostAddressSet(addresses: v4, prefixes: local, ipv6Addresses: v6)
        return addresses
    }

    /// Every IPv4 and IPv6 address on an interface now.
    static func read() -> (Set<IPv4Address>, Set<IPv6Address>) {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return ([], []) }
        defer { freeifaddrs(list) }
        var v4: Set<IPv4Address> = []
        var v6: Set<IPv6Address> = []
        var entry = list
        while let current = entry {
            if let address = current.pointee.ifa_addr {
                let family = Int32(address.pointee.sa_family)
                let size = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
                if family == AF_INET || family == AF_INET6 {
                    var storage = sockaddr_storage()
                    withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: size)) }
                    switch InetAddress.parts(storage)?.0 {
                    case .v4(let found)?: v4.insert(found)
                    case .v6(let found)?: v6.insert(found)
                    case nil: break
                    }
                }
            }
            entry = current.pointee.ifa_next
        }
        return (v4, v6)
    }
}
