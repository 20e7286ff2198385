// The host commands' `--log-level` and `--log-format`, resolved as the guest
// commands resolve theirs (LogSettings: flag, then environment, then default).
import ArgumentParser
import Logging
import SovnetGuest
import SovnetGuestCommands

struct LoggingOptions: ParsableArguments {
    @Option(name: [.customLong("log-level", withSingleDash: true), .customLong("log-level")], help: "\(LogSettings.levelHelp)")
    var level: String?

    @Option(name: [.customLong("log-format", withSingleDash: true), .customLong("log-format")], help: "\(LogSettings.formatHelp)")
    var format: String?

    /// The level: the flag's, the environment's, else `fallback`.
    func level(default fallback: Logger.Level) throws -> Logger.Level {
        do { return try LogSettings.level(level, default: fallback) } catch { throw ValidationError(error.message) }
    }

    /// The format: the flag's, the environment's, else text.
    func logFormat() throws -> LogFormat {
        do { return try LogSettings.format(format) } catch { throw ValidationError(error.message) }
    }

    /// Sends every logger's events to standard error at the chosen level and format.
    func bootstrap(default fallback: Logger.Level) throws {
        LogSettings.bootstrap(level: try level(default: fallback), format: try logFormat())
    }
}
