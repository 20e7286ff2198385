// A client of QEMU's machine protocol (QMP, JSON lines on the `-qmp` unix
// socket), for the one thing the launcher asks: `system_powerdown`, which
// presses the guest's ACPI power button so that its init shuts down cleanly
// (sovnet-init stops the services and releases the DHCP lease). The
// greeting is read, capabilities negotiated, the command sent and its
// answer read, each within the timeout.
import Glibc
import SovnetLink

/// Talks to QEMU's monitor.
public enum QemuMonitor {
    /// Presses the power button; the error says why it could not.
    public static func powerDown(socket path: String, timeout: Duration = .seconds(3)) throws {
        let fd = try makeConnectedSocket(.unix(path: path))
        defer { close(fd) }
        let deadline = ContinuousClock.now + timeout
        var pending: [UInt8] = []
        _ = try readMessage(fd, &pending, deadline: deadline)
        for command in [#"{"execute":"qmp_capabilities"}"#, #"{"execute":"system_powerdown"}"#] {
            let bytes = Array((command + "\n").utf8)
            guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
                throw LaunchError("QMP: cannot send: \(String(cString: strerror(errno)))")
            }
            var answer: String
            repeat {
                answer = try readMessage(fd, &pending, deadline: deadline)
            } while answer.contains("\"event\"")
            guard answer.contains("\"return\"") else { throw LaunchError("QMP refused \(command): \(answer)") }
        }
    }

    /// Reads the next JSON line.
    private static func readMessage(_ fd: Int32, _ pending: inout [UInt8], deadline: ContinuousClock.Instant) throws -> String {
        while true {
            if let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            let left = deadline - .now
            guard left > .zero else { throw LaunchError("QMP: no answer in time") }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(left.components.seconds * 1000 + 1)) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw LaunchError("QMP: the monitor closed the connection") }
            pending += chunk[..<count]
        }
    }
}
