// Writes resolv.conf(5) from a lease and router advertisements: one
// `nameserver` line per server, the DHCPv4 lease's first and then those of
// router advertisements (the C library reads three), and a `search` line
// from the domain search list (option 119) or else the domain name (option 15).
//
// The file is replaced with `AtomicFile`, which copes with /etc/resolv.conf
// being a bind mount inside `ip netns exec`.
import SovnetGuestCore
import SovnetLink
import SovnetWire

/// A resolv.conf file that sovnet maintains.
public struct ResolvConf {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The file's text for these servers and search domains.
    public static func contents(servers: [IPAddress], search: [String]) -> String {
        var text = "# Written by sovnet forward from its DHCP lease and router advertisements.\n"
        for server in servers { text += "nameserver \(server)\n" }
        if !search.isEmpty { text += "search \(search.joined(separator: " "))\n" }
        return text
    }

    /// The search list of a lease: option 119, or else option 15.
    public static func searchDomains(of lease: DHCPLease) -> [String] {
        if !lease.searchDomains.isEmpty {
            return lease.searchDomains.map { String($0.description.dropLast()) }
        }
        return lease.domainName.map { [$0] } ?? []
    }

    /// Writes `text` to the file (see `AtomicFile`).
    public func write(_ text: String) throws(LinkError) {
        try AtomicFile(path: path).write(text)
    }
}
