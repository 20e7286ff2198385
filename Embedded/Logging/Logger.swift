// The part of swift-log's API that the guest side uses (Logger, its levels,
// messages and metadata, LogHandler, LoggingSystem.bootstrap), for the
// Embedded Swift build of the guest program only (scripts/build-guest-embedded,
// docs/guest.md). swift-log itself cannot be built as Embedded Swift: its
// Logger holds `any LogHandler`, an existential. Here the handler that
// `bootstrap` makes is captured, at its concrete type, in a closure.
//
// Every other build links swift-log; the guest side's sources are the same in
// both, so what they call must mean the same here: a logger filters by the
// level its handler was made with, keeps its own metadata (a copy's changes
// stay in the copy) and hands the handler events with that metadata merged in.

/// Logs events through the handler `LoggingSystem.bootstrap` set up.
public struct Logger {
    public let label: String
    public var logLevel: Level
    private var metadata: Metadata = [:]
    private let handler: (LogEvent) -> Void

    public init(label: String) {
        self.label = label
        let made = LoggingSystem.makeHandler(label)
        logLevel = made.level
        handler = made.log
    }

    public subscript(metadataKey key: String) -> MetadataValue? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Level, _ message: @autoclosure () -> Message, metadata extra: @autoclosure () -> Metadata? = nil,
                    file: String = #fileID, function: String = #function, line: UInt = #line) {
        guard level >= logLevel else { return }
        var merged = metadata
        if let extra = extra() {
            for (key, value) in extra { merged[key] = value }
        }
        handler(LogEvent(level: level, message: message(), metadata: merged.isEmpty ? nil : merged,
                         file: file, function: function, line: line))
    }

    public func trace(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                      file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .trace, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    public func debug(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                      file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .debug, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    public func info(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                     file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .info, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    public func notice(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                       file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .notice, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    public func warning(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                        file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .warning, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    public func error(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                      file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .error, message(), metadata: metadata(), file: file, function: function, line: line)
    }

    public func critical(_ message: @autoclosure () -> Message, metadata: @autoclosure () -> Metadata? = nil,
                         file: String = #fileID, function: String = #function, line: UInt = #line) {
        log(level: .critical, message(), metadata: metadata(), file: file, function: function, line: line)
    }
}

extension Logger {
    /// How severe an event is, least first.
    public enum Level: String, CaseIterable, Comparable, Sendable, CustomStringConvertible {
        case trace, debug, info, notice, warning, error, critical

        private var severity: Int {
            switch self {
            case .trace: 0
            case .debug: 1
            case .info: 2
            case .notice: 3
            case .warning: 4
            case .error: 5
            case .critical: 6
            }
        }

        public static func < (lower: Level, higher: Level) -> Bool { lower.severity < higher.severity }

        public var description: String { rawValue }
    }

    /// An event's text.
    public struct Message: ExpressibleByStringLiteral, ExpressibleByStringInterpolation, CustomStringConvertible, Sendable {
        public var description: String

        public init(stringLiteral value: String) {
            description = value
        }

        public init(stringInterpolation: DefaultStringInterpolation) {
            description = String(stringInterpolation: stringInterpolation)
        }
    }

    public typealias Metadata = [String: MetadataValue]

    /// A metadata value: text (the only kind the guest side logs).
    public enum MetadataValue: ExpressibleByStringLiteral, ExpressibleByStringInterpolation, CustomStringConvertible, Sendable {
        case string(String)

        public init(stringLiteral value: String) {
            self = .string(value)
        }

        public init(stringInterpolation: DefaultStringInterpolation) {
            self = .string(String(stringInterpolation: stringInterpolation))
        }

        public var description: String {
            switch self {
            case .string(let text): text
            }
        }
    }
}

/// One event, as a handler is given it.
public struct LogEvent {
    public var level: Logger.Level
    public var message: Logger.Message
    public var metadata: Logger.Metadata?
    public var file: String
    public var function: String
    public var line: UInt
}

/// Writes events somewhere.
public protocol LogHandler {
    var logLevel: Logger.Level { get set }
    var metadata: Logger.Metadata { get set }
    subscript(metadataKey key: String) -> Logger.MetadataValue? { get set }
    func log(event: LogEvent)
}

/// Where loggers send their events: set once, before the first logger is
/// made. Unlike swift-log, which writes to standard error until then, a
/// logger made earlier drops its events; the guest commands bootstrap first.
public enum LoggingSystem {
    nonisolated(unsafe) private static var factory: (String) -> (level: Logger.Level, log: (LogEvent) -> Void) = { _ in
        (.info, { _ in })
    }

    /// Makes every logger created from now on log through `make(label)`.
    public static func bootstrap<Handler: LogHandler>(_ make: @escaping (String) -> Handler) {
        factory = { label in
            let handler = make(label)
            return (handler.logLevel, { handler.log(event: $0) })
        }
    }

    static func makeHandler(_ label: String) -> (level: Logger.Level, log: (LogEvent) -> Void) {
        factory(label)
    }
}
