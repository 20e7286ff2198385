// The logging settings every long-running command takes: `--log-level` and
// `--log-format`, or the environment's SOVNET_LOG_LEVEL and SOVNET_LOG_FORMAT
// (for a guest's init or a service manager, where flags are awkward). A flag
// wins over the environment, which wins over the command's own default
// (`-debug`, gvproxy's configuration file). The host's commands take the
// same flags through swift-argument-parser and resolve them here.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import Logging
import SovnetGuest

/// Log level and format from flags, the environment and a default.
public enum LogSettings {
    /// The options, for a guest command's table.
    public static let options: [OptionSpec] = [
        OptionSpec("log-level", singleDash: true, .value(placeholder: "level"), help: levelHelp),
        OptionSpec("log-format", singleDash: true, .value(placeholder: "format"), help: formatHelp),
    ]
    public static let levelHelp =
        "The least severe events logged: trace, debug, info, notice, warning, error or critical (env SOVNET_LOG_LEVEL)."
    public static let formatHelp = "text (one line per event) or json (one object per line) (env SOVNET_LOG_FORMAT)."

    /// The level: the flag's, the environment's, else `fallback`.
    public static func level(_ flag: String?, default fallback: Logger.Level) throws(UsageError) -> Logger.Level {
        guard let text = flag ?? environment("SOVNET_LOG_LEVEL") else { return fallback }
        guard let parsed = Logger.Level(rawValue: text.lowercased()) else {
            throw UsageError("--log-level must be one of " + Logger.Level.allCases.map { $0.rawValue }.joined(separator: ", ")
                             + "; not '\(text)'")
        }
        return parsed
    }

    /// The format: the flag's, the environment's, else text.
    public static func format(_ flag: String?) throws(UsageError) -> LogFormat {
        guard let text = flag ?? environment("SOVNET_LOG_FORMAT") else { return .text }
        guard let parsed = LogFormat(rawValue: text.lowercased()) else {
            throw UsageError("--log-format must be text or json; not '\(text)'")
        }
        return parsed
    }

    /// Sends every logger's events to standard error at the chosen level and format.
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        LoggingSystem.bootstrap { label in SovnetLogHandler(label: label, level: level, format: format) }
    }

    /// Bootstraps logging from a guest command's parsed options.
    static func bootstrap(_ options: ParsedOptions, default fallback: Logger.Level) throws(UsageError) {
        bootstrap(level: try level(options.value("log-level"), default: fallback), format: try format(options.value("log-format")))
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }
}
