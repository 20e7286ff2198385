// sovnet's log lines, the same wherever they go (standard error, `-log-file`,
// the proxy.log of `sovnet up`): one line per event,
//
//   2026-12-05T18:06:24.123Z notice nat: forwarding tcp:127.0.0.1:2222=192.168.127.2:22
//
// or, with `--log-format json`, one JSON object per line:
//
//   {"level":"notice","message":"forwarding …","subsystem":"nat","time":"2026-12-05T18:06:24.123Z"}
//
// The subsystem says which part of sovnet speaks (switch, nat, dhcp, dns,
// api, ssh, forward, init, launch): the logger's `subsystem` metadata, set
// with `Logger.subsystem(_:)`, else the last word of its label. Other
// metadata follows the message as key=value, or under "metadata" in JSON.
// Each line is one write(2), so lines from several threads do not mix.
// JSON is written here (keys sorted, strings escaped as RFC 8259 asks), so
// the guest side links no Foundation.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import Logging
import SovnetLink

/// How log lines are written.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Writes log events to a descriptor in sovnet's one format.
public struct SovnetLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let descriptor: Int32
    private let label: String
    private let format: LogFormat

    /// Logs to `descriptor` (2: standard error).
    public init(label: String, descriptor: Int32 = 2, level: Logger.Level, format: LogFormat = .text) {
        self.label = label
        self.descriptor = descriptor
        logLevel = level
        self.format = format
    }

    /// Logs to the file at `path` (created, appended to); to standard error
    /// if it cannot be opened.
    public init(label: String, path: String, level: Logger.Level, format: LogFormat = .text) {
        let fd = systemOpen(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        self.init(label: label, descriptor: fd >= 0 ? fd : 2, level: level, format: format)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        for (key, value) in event.metadata ?? [:] { fields[key] = value }
        let subsystem = fields.removeValue(forKey: "subsystem").map { $0.description }
            ?? String(label.split(separator: ".").last ?? Substring(label))
        let time = Self.timestamp()
        let line: String
        switch format {
        case .text:
            let extra = fields.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            line = "\(time) \(event.level) \(subsystem): \(event.message)\(extra)\n"
        case .json:
            var members = [("level", Self.json("\(event.level)")), ("message", Self.json("\(event.message)")),
                           ("subsystem", Self.json(subsystem)), ("time", Self.json(time))]
            if !fields.isEmpty {
                let metadata = fields.sorted { $0.key < $1.key }.map { "\(Self.json($0.key)):\(Self.json("\($0.value)"))" }
                members.append(("metadata", "{" + metadata.joined(separator: ",") + "}"))
            }
            line = "{" + members.sorted { $0.0 < $1.0 }.map { "\(Self.json($0.0)):\($0.1)" }.joined(separator: ",") + "}\n"
        }
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    }

    /// `text` as a JSON string: quotes, backslashes and control characters escaped.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Now, in UTC with milliseconds: `2026-12-05T18:06:24.123Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec / 1_000_000)
        let fraction = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
    }
}

extension Logger {
    /// This logger, its lines marked as the subsystem `name`'s.
    public func subsystem(_ name: String) -> Logger {
        var copy = self
        copy[metadataKey: "subsystem"] = "\(name)"
        return copy
    }
}
