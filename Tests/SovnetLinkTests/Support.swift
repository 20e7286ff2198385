import Foundation
import Glibc

/// A fresh temporary directory, removed when the value is dropped.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "sovnet-test-" + UUID().uuidString.prefix(8)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// A made-up Ethernet frame of `length` bytes whose bytes encode `seed`.
func testFrame(length: Int, seed: Int) -> [UInt8] {
    (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }
}

/// Whether this process may create tap devices and namespaces.
let runningAsRoot = geteuid() == 0
let tunAvailable = access("/dev/net/tun", R_OK | W_OK) == 0

/// Writes all of `bytes` to `fd`.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let count = write(fd, raw.baseAddress! + offset, raw.count - offset)
            precondition(count > 0, "write failed: \(errno)")
            offset += count
        }
    }
}

/// A connected pair of unix sockets of `type`.
func socketPair(_ type: Int32 = Int32(SOCK_STREAM.rawValue)) -> (Int32, Int32) {
    var fds: [Int32] = [0, 0]
    precondition(socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
    return (fds[0], fds[1])
}
