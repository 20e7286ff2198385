// Opening the guest's end of a serial line (a virtio console port) for the
// `vm` framing: raw mode, no echo, no line discipline. How frames and
// markers travel on the line is in SovnetFraming/SerialMarker.swift.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif

/// Opening the guest's end of a serial line.
public enum SerialDevice {
    /// Opens a character device for reading and writing; a tty is put in raw
    /// mode (no echo, no line discipline, no flow control, 8 bits) and
    /// whatever it had buffered is discarded.
    public static func open(_ path: String) throws(LinkError) -> Int32 {
        let fd = systemOpen(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw LinkError.lastError("open \(path)") }
        var status = stat()
        guard fstat(fd, &status) == 0, hasFileType(status.st_mode, S_IFCHR) else {
            systemClose(fd)
            throw LinkError.unsupported("\(path) is not a character device")
        }
        if isatty(fd) == 1 {
            var settings = termios()
            guard tcgetattr(fd, &settings) == 0 else {
                let error = LinkError.lastError("tcgetattr \(path)")
                systemClose(fd)
                throw error
            }
            cfmakeraw(&settings)
            settings.c_cflag |= tcflag_t(CLOCAL | CREAD)
            guard tcsetattr(fd, TCSANOW, &settings) == 0 else {
                let error = LinkError.lastError("tcsetattr \(path)")
                systemClose(fd)
                throw error
            }
            tcflush(fd, TCIOFLUSH)
        }
        return fd
    }
}
