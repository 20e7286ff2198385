// Replaces a small file atomically: a temporary file in the same directory,
// fsync, rename. Where the path is a mount point, as /etc/resolv.conf is
// inside `ip netns exec` (a bind mount of /etc/netns/NAME/resolv.conf),
// rename fails with EBUSY and the file is rewritten in place instead; the
// same happens when the directory is read-only but the file is writable.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetLink

/// A file that is written whole.
public struct AtomicFile {
    public let path: String

    public init(path: String) {
        self.path = path
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
                throw LinkError.system(operation: "rename \(temporary) to \(path)", errno: ErrorNumber(rawValue: reason))
            }
        } catch {
            unlink(temporary)
            guard case .system(_, let reason) = error, [EROFS, EACCES].contains(reason.rawValue) else {
                throw error
            }
        }
        try Self.writeFile(path, text, flags: O_WRONLY | O_CREAT | O_TRUNC)
    }

    private static func writeFile(_ path: String, _ text: String, flags: Int32) throws(LinkError) {
        let fd = systemOpen(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LinkError.system(operation: "open \(path)", errno: ErrorNumber(rawValue: errno)) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { systemWrite(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LinkError.system(operation: "write \(path)", errno: ErrorNumber(rawValue: errno))
            }
            offset += count
        }
        guard fsync(fd) == 0 || errno == EINVAL else {
            throw LinkError.system(operation: "fsync \(path)", errno: ErrorNumber(rawValue: errno))
        }
    }
}
