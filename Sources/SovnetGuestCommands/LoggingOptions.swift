// The logging options every long-running command takes: `--log-level` and
// `--log-format`, or the environment's SOVNET_LOG_LEVEL and SOVNET_LOG_FORMAT
// (for a guest's init or a service manager, where flags are awkward). A
// flag wins over the environment, which wins over the command's own default
// (`-debug`, gvproxy's configuration file).
import ArgumentParser
import Glibc
import Logging
import SovnetGuest

public struct LoggingOptions: ParsableArguments {
    public init() {}

    @Option(name: [.customLong("log-level", withSingleDash: true), .customLong("log-level")],
            help: "The least severe events logged: trace, debug, info, notice, warning, error or critical (env SOVNET_LOG_LEVEL).")
    var level: String?

    @Option(name: [.customLong("log-format", withSingleDash: true), .customLong("log-format")], help: "text (one line per event) or json (one object per line) (env SOVNET_LOG_FORMAT).")
    var format: String?

    /// The level: the flag's, the environment's, else `fallback`.
    public func level(default fallback: Logger.Level) throws -> Logger.Level {
        guard let text = level ?? Self.environment("SOVNET_LOG_LEVEL") else { return fallback }
        guard let parsed = Logger.Level(rawValue: text.lowercased()) else {
            throw ValidationError("--log-level must be one of " + Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                                  + "; not '\(text)'")
        }
        return parsed
    }

    /// The format: the flag's, the environment's, else text.
    public func logFormat() throws -> LogFormat {
        guard let text = format ?? Self.environment("SOVNET_LOG_FORMAT") else { return .text }
        guard let parsed = LogFormat(rawValue: text.lowercased()) else {
            throw ValidationError("--log-format must be text or json; not '\(text)'")
        }
        return parsed
    }

    /// Sends every logger's events to standard error at the chosen level and format.
    public func bootstrap(default fallback: Logger.Level) throws {
        let level = try level(default: fallback)
        let format = try logFormat()
        LoggingSystem.bootstrap { label in SovnetLogHandler(label: label, level: level, format: format) }
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }
}
