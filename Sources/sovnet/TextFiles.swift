// Whole text files for the host's commands (configuration files, reports),
// each failure one line that names the file and what it was for.
import Glibc
import SovnetGuestCommands

/// Reads a text file whole; a failure names `what` and `path` ("cannot read -config /tmp: Is a directory").
func readTextFile(_ path: String, what: String) throws(RuntimeFailure) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw RuntimeFailure("cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count = read(fd, &buffer, buffer.count)
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { throw RuntimeFailure("cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
        if count == 0 { break }
        bytes += buffer[..<count]
        guard bytes.count <= 16 << 20 else { throw RuntimeFailure("cannot read \(what) \(path): larger than 16 MiB") }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw RuntimeFailure("cannot read \(what) \(path): not UTF-8 text")
    }
    return text
}

/// Writes a text file whole, replacing it; a failure names `what` and `path`.
func writeTextFile(_ path: String, _ text: String, what: String) throws(RuntimeFailure) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RuntimeFailure("cannot write \(what) \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if count < 0, errno == EINTR { continue }
        guard count > 0 else { throw RuntimeFailure("cannot write \(what) \(path): \(String(cString: strerror(errno)))") }
        written += count
    }
}

/// Checks, before a long run, that `path` can be written (creating it, not emptying it).
func checkWritable(_ path: String, what: String) throws(RuntimeFailure) {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RuntimeFailure("cannot write \(what) \(path): \(String(cString: strerror(errno)))") }
    close(fd)
}
