// The file systems an init mounts before anything else can run: /proc,
// /sys, /dev (devtmpfs, so device nodes appear as drivers load), /dev/pts,
// /dev/shm and /run. One already mounted (by an initramfs, or a container's
// runtime) is left as it is.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetLink

/// Mounts the early file systems.
public enum EarlyMounts {
    /// One mount: what, where, which type, flags and options.
    public struct Mount: Sendable, Equatable {
        public let source: String
        public let target: String
        public let type: String
        public let flags: UInt
        public let options: String?
    }

    static let noSUID = UInt(MS_NOSUID)
    static let noDev = UInt(MS_NODEV)
    static let noExec = UInt(MS_NOEXEC)

    /// In the order they must be mounted.
    public static let table: [Mount] = [
        Mount(source: "proc", target: "/proc", type: "proc", flags: noSUID | noDev | noExec, options: nil),
        Mount(source: "sysfs", target: "/sys", type: "sysfs", flags: noSUID | noDev | noExec, options: nil),
        Mount(source: "devtmpfs", target: "/dev", type: "devtmpfs", flags: noSUID, options: "mode=0755"),
        Mount(source: "devpts", target: "/dev/pts", type: "devpts", flags: noSUID | noExec, options: "gid=5,mode=0620,ptmxmode=0666"),
        Mount(source: "shm", target: "/dev/shm", type: "tmpfs", flags: noSUID | noDev, options: "mode=1777"),
        Mount(source: "run", target: "/run", type: "tmpfs", flags: noSUID | noDev, options: "mode=0755"),
    ]

    /// What mounting one file system came to.
    public enum Outcome: Equatable, Sendable {
        case mounted
        case alreadyMounted
        case failed(String)
    }

    /// Mounts every file system of the table not mounted yet.
    public static func mountAll() -> [(Mount, Outcome)] {
        table.map { mount in (mount, perform(mount)) }
    }

    static func perform(_ mount: Mount) -> Outcome {
        if isMountPoint(mount.target) { return .alreadyMounted }
        if access(mount.target, F_OK) != 0, mkdir(mount.target, 0o755) != 0, errno != EEXIST {
            return .failed("mkdir \(mount.target): \(String(cString: strerror(errno)))")
        }
        let result = systemMount(mount.source, mount.target, mount.type, mount.flags, mount.options)
        if result == 0 { return .mounted }
        if errno == EBUSY { return .alreadyMounted }
        return .failed(String(cString: strerror(errno)))
    }

    /// Whether `path` is a mount point: a different device from its parent's,
    /// or listed in /proc/self/mounts (bind mounts of the same device).
    static func isMountPoint(_ path: String) -> Bool {
        var own = stat()
        var parent = stat()
        guard stat(path, &own) == 0, stat(path + "/..", &parent) == 0 else { return false }
        if own.st_dev != parent.st_dev { return true }
        return mounted().contains(path)
    }

    /// The mount points in /proc/self/mounts (empty before /proc is mounted).
    public static func mounted() -> Set<String> {
        let file = fopen("/proc/self/mounts", "r")
        guard let file else { return [] }
        defer { fclose(file) }
        var points: Set<String> = []
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, file) > 0, let line {
            let fields = String(cString: line).split(separator: " ")
            if fields.count > 1 { points.insert(String(fields[1])) }
        }
        free(line)
        return points
    }
}
