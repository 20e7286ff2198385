// Writes resolv.conf(5) from a lease: one `nameserver` line per server (the
// C library reads three), and a `search` line from the domain search list
// (option 119) or else the domain name (option 15).
//
// The file is replaced atomically (a temporary file in the same directory,
// fsync, rename). Where the path is a mount point, as /etc/resolv.conf is
// inside `ip netns exec` (a bind mount of /etc/netns/NAME/resolv.conf),
// rename fails with EBUSY and the file is rewritten in place instead.
import Glibc
import SovnetCore
import SovnetLink
import SovnetWire
import SystemPackage

/// A resolv.conf file that sovnet maintains.
public struct ResolvConf {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The file's text for these servers and search domains.
    public static func contents(servers: [IPv4Address], search: [String]) -> String {
        var text = "# Written by sovnet forward from its DHCP lease.\n"
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

    /// Writes `text` to the file, atomically where the file system allows.
    public func write(_ text: String) throws(LinkError) {
        let temporary = path + ".sovnet-\(getpid())"
        do throws(LinkError) {
            try Self.writeFile(temporary, text, flags: O_WRONLY | O_CREAT | O_TRUNC | O_EXCL)
            if rename(temporary, path) == 0 { return }
            let reason = errno
            unlink(temporary)
            guard reason == EBUSY || reason == EXDEV else {
                throw LinkError.system(operation: "rename \(temporary) to \(path)", errno: Errno(rawValue: reason))
            }
        } catch {
            unlink(temporary)
            // A read-only directory but a writable file (or a mount point): write in place.
            guard case .system(_, let reason) = error, [.readOnlyFileSystem, .permissionDenied].contains(reason) else {
                throw error
            }
        }
        try Self.writeFile(path, text, flags: O_WRONLY | O_CREAT | O_TRUNC)
    }

    private static func writeFile(_ path: String, _ text: String, flags: Int32) throws(LinkError) {
        let fd = open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LinkError.system(operation: "open \(path)", errno: Errno(rawValue: errno)) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LinkError.system(operation: "write \(path)", errno: Errno(rawValue: errno))
            }
            offset += count
        }
        guard fsync(fd) == 0 || errno == EINVAL else {
            throw LinkError.system(operation: "fsync \(path)", errno: Errno(rawValue: errno))
        }
    }
}
