// The guest's power button: how a host asks for a clean shutdown (QEMU's
// `system_powerdown`, crosvm's `powerbtn`). The ACPI button driver turns
// the press into a KEY_POWER input event on a device named "Power Button";
// with evdev loaded it appears as /dev/input/eventN. Read with the input
// event layout of a 64-bit kernel: a timeval, then type, code and value.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import SovnetLink

/// An open power button.
public final class PowerButton {
    public let descriptor: Int32
    public let device: String

    private static let eventSize = 24
    private static let keyEvent: UInt16 = 1
    private static let keyPower: UInt16 = 116

    /// Opens the first input device called "Power Button", if there is one.
    public init?() {
        guard let directory = opendir("/sys/class/input") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("event"), let label = Self.firstLine("/sys/class/input/\(name)/device/name"),
                  label.hasSuffix("Power Button") else { continue }
            let fd = systemOpen("/dev/input/\(name)", O_RDONLY | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { continue }
            descriptor = fd
            device = "/dev/input/\(name)"
            return
        }
        return nil
    }

    deinit { close(descriptor) }

    /// Reads what is pending; true when it holds a press of the power key.
    public func pressed() -> Bool {
        var buffer = [UInt8](repeating: 0, count: Self.eventSize * 16)
        var pressed = false
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return pressed }
            for offset in stride(from: 0, to: count - Self.eventSize + 1, by: Self.eventSize) {
                buffer.withUnsafeBytes { raw in
                    let type = raw.loadUnaligned(fromByteOffset: offset + 16, as: UInt16.self)
                    let code = raw.loadUnaligned(fromByteOffset: offset + 18, as: UInt16.self)
                    let value = raw.loadUnaligned(fromByteOffset: offset + 20, as: Int32.self)
                    if type == Self.keyEvent, code == Self.keyPower, value == 1 { pressed = true }
                }
            }
        }
    }

    static func firstLine(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
