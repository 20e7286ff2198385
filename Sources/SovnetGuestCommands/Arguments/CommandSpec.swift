// The guest commands' command lines, parsed as Go's flag package parses
// gvforwarder's: `-name value`, `-name=value`, `--name value` and
// `--name=value`; a switch is `-name`, or `-name=true` / `-name=false`; `--`
// ends the options. Options named in gvforwarder's style take one dash as
// well as two, the others two only. A command declares its options here once;
// parsing, help and the usage errors follow from that.
//
// It is written here, not taken from swift-argument-parser, because that
// library brings FoundationEssentials into the guest binary: 8.5 MB of the
// 16 MB it was, where the target for the whole binary is 6 MB (issue #19,
// docs/guest.md). The host's commands still use swift-argument-parser.

/// One option of a guest command.
public struct OptionSpec: Sendable {
    /// What an option takes.
    public enum Kind: Sendable, Equatable {
        /// A value; given twice, the last wins.
        case value(placeholder: String)
        /// A value that may be given several times; all are kept.
        case repeatedValue(placeholder: String)
        /// On when named (or `=true`), off by default (or `=false`).
        case toggle
    }

    /// The name without dashes: `url`.
    public let name: String
    /// Whether `-name` is accepted besides `--name` (gvforwarder's flags).
    public let singleDash: Bool
    public let kind: Kind
    public let help: String
    /// The default shown in the help, if any.
    public let defaultValue: String?

    public init(_ name: String, singleDash: Bool = false, _ kind: Kind, help: String, default defaultValue: String? = nil) {
        self.name = name
        self.singleDash = singleDash
        self.kind = kind
        self.help = help
        self.defaultValue = defaultValue
    }
}

/// A command line the user got wrong: printed with the command's usage line, exit status 64.
public struct UsageError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A guest command's name, what it does, and its options.
public struct CommandSpec: Sendable {
    public let name: String
    public let abstract: String
    public let discussion: String
    public let options: [OptionSpec]

    public init(name: String, abstract: String, discussion: String, options: [OptionSpec]) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.options = options
    }

    /// What a command line asks for: to run with these options, or the help.
    public enum Request: Equatable {
        case run(ParsedOptions)
        case help
    }

    /// Parses `arguments` (the words after the command's name).
    public func parse(_ arguments: [String]) throws(UsageError) -> Request {
        var parsed = ParsedOptions()
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let word = arguments[index]
            index += 1
            if word == "--" {
                if index < arguments.endIndex { throw UsageError("unexpected argument '\(arguments[index])'") }
                break
            }
            guard word.hasPrefix("-"), word != "-" else { throw UsageError("unexpected argument '\(word)'") }
            let dashes = word.hasPrefix("--") ? 2 : 1
            let flag = word.prefix { $0 != "=" }
            let name = String(flag.dropFirst(dashes))
            let attached: String? = word.firstIndex(of: "=").map { String(word[word.index(after: $0)...]) }
            if ["h", "help"].contains(name), attached == nil { return .help }
            guard let option = options.first(where: { $0.name == name }), dashes == 2 || option.singleDash else {
                throw UsageError("unknown option '\(flag)'")
            }
            switch option.kind {
            case .toggle:
                switch attached {
                case nil, "true", "1": parsed.values[name] = ["true"]
                case "false", "0": parsed.values[name] = ["false"]
                case let other?: throw UsageError("\(flag) is a switch: '=\(other)' should be =true or =false")
                }
            case .value, .repeatedValue:
                let value: String
                if let attached {
                    value = attached
                } else if index < arguments.endIndex {
                    value = arguments[index]
                    index += 1
                } else {
                    throw UsageError("missing value for '\(word)'")
                }
                if case .repeatedValue = option.kind {
                    parsed.values[name, default: []].append(value)
                } else {
                    parsed.values[name] = [value]
                }
            }
        }
        return .run(parsed)
    }
}

/// The options a command line gave, by name.
public struct ParsedOptions: Equatable, Sendable {
    var values: [String: [String]] = [:]

    public init() {}

    /// The value given for `name` (the last, if given more than once).
    public func value(_ name: String) -> String? { values[name]?.last }

    /// Every value given for a repeatable option, in order.
    public func values(_ name: String) -> [String] { values[name] ?? [] }

    /// Whether a switch is on.
    public func isOn(_ name: String) -> Bool { values[name]?.last == "true" }

    /// The value of `name` as a whole number, if given.
    public func integer(_ name: String) throws(UsageError) -> Int? {
        guard let text = value(name) else { return nil }
        guard let number = Int(text) else { throw UsageError("--\(name) wants a whole number, not '\(text)'") }
        return number
    }
}
