// The running program's own path, read from /proc/self/exe: what `sovnet
// init` starts `sovnet forward` with, and what `sovnet up` and `sovnet
// bench` start guests' forwarders with.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetLink

/// This program, as the kernel ran it.
public enum OwnProgram {
    /// Its path, or the name it was started as when /proc is not mounted.
    public static var path: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
