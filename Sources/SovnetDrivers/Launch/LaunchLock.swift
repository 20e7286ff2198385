// Who owns a run directory: the `sovnet up` that holds an exclusive flock on
// RUN/launch.lock, for as long as it runs. The kernel lets go when the
// launcher ends, even by SIGKILL, and the descriptor is close-on-exec, so
// the guests it starts never hold it. Only the owner writes or removes
// state.json: a launch that cannot take the lock touches nothing. `status`
// and `down` ask the lock, not a PID that may have been reused, whether a
// launcher runs.
import Glibc

/// The lock a running `sovnet up` holds on its run directory.
public final class LaunchLock {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }

    public static func path(runDirectory: String) -> String { runDirectory + "/launch.lock" }

    /// Takes the lock of `runDirectory`, or nil when a launcher holds it.
    public static func take(runDirectory: String) throws(LaunchError) -> LaunchLock? {
        let path = path(runDirectory: runDirectory)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LaunchError("\(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            close(fd)
            if error == EWOULDBLOCK { return nil }
            throw LaunchError("\(path): \(String(cString: strerror(error)))")
        }
        return LaunchLock(descriptor: fd)
    }

    /// Whether a launcher holds the lock of `runDirectory` now.
    public static func isHeld(runDirectory: String) -> Bool {
        let fd = open(path(runDirectory: runDirectory), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return errno == EWOULDBLOCK }
        flock(fd, LOCK_UN)
        return false
    }
}
