// Before binding a unix socket path, find out what is there: nothing, a
// dead socket file left by a process that died (removed, so the bind
// succeeds: the field deployment's stale sockets blocked restarts), or a
// socket something still listens on (the launch stops, naming the owner,
// found through /proc/net/unix and the owners' /proc/PID/fd links).
import Foundation
import Glibc
import SovnetLink

/// What a socket path holds.
public enum SocketPathState: Equatable, Sendable {
    case absent
    /// A socket file nobody listens on; it was removed.
    case staleRemoved
    /// Something listens; the owner when it could be found.
    case live(owner: String?)
    /// A file that is not a socket: left alone.
    case notASocket
}

public enum SocketProbe {
    /// Probes `path`, removing it when it is a dead socket.
    public static func probe(_ path: String) -> SocketPathState {
        var info = stat()
        guard lstat(path, &info) == 0 else { return .absent }
        guard info.st_mode & S_IFMT == S_IFSOCK else { return .notASocket }
        let fd = socket(AF_UNIX, SocketType.stream | SocketType.closeOnExec, 0)
        guard fd >= 0 else { return .live(owner: nil) }
        defer { close(fd) }
        if connect(fd, unixPath: path) == 0 { return .live(owner: owner(of: path)) }
        let reason = errno
        guard reason == ECONNREFUSED || reason == ENOENT else { return .live(owner: nil) }
        unlink(path)
        return .staleRemoved
    }

    /// `name (pid N)` of the process holding the listening socket bound at `path`.
    public static func owner(of path: String) -> String? {
        guard let table = try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8) else { return nil }
        let inodes = Set(table.split(whereSeparator: \.isNewline).dropFirst().compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 8, fields.last.map(String.init) == path else { return nil }
            return String(fields[6])
        })
        guard !inodes.isEmpty, let processes = opendir("/proc") else { return nil }
        defer { closedir(processes) }
        while let entry = readdir(processes) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let pid = Int32(name), let descriptors = opendir("/proc/\(pid)/fd") else { continue }
            defer { closedir(descriptors) }
            while let fd = readdir(descriptors) {
                let fdName = withUnsafeBytes(of: fd.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                var target = [CChar](repeating: 0, count: 256)
                let length = readlink("/proc/\(pid)/fd/\(fdName)", &target, target.count - 1)
                guard length > 0 else { continue }
                let link = String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if link.hasPrefix("socket:["), inodes.contains(String(link.dropFirst(8).dropLast())) {
                    let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                        .trimmingCharacters(in: .newlines) ?? "?"
                    return "\(command) (pid \(pid))"
                }
            }
        }
        return nil
    }

    /// connect(2) to a unix socket path; 0 or -1 with errno.
    static func connect(_ fd: Int32, unixPath path: String) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
    }
}
