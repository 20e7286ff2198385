// A swift-log handler that appends lines to a file, for the proxy that
// `sovnet up` runs in-process: its log goes to the run directory
// (`proxy.log`) so the terminal shows only the launcher's progress.
import Foundation
import Glibc
import Logging

/// Appends one line per log event to a file.
public struct FileLogHandler: LogHandler {
    private let descriptor: Int32
    private let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]

    /// Opens (creating, appending) `path`; events go to standard error if it cannot be opened.
    public init(label: String, path: String, level: Logger.Level) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        descriptor = fd >= 0 ? fd : 2
        self.label = label
        logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let time = ISO8601DateFormatter.string(from: Date(), timeZone: .current,
                                               formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        let text = Array("\(time) \(event.level) \(label): \(event.message)\n".utf8)
        _ = text.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }
}
