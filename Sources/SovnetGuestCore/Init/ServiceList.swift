// The guest's service list, `/etc/sovnet/services`: one command line per
// service, started in order by `sovnet-init` and stopped in reverse order.
//
//   # comments and blank lines are skipped
//   tailscaled --state=/var/lib/tailscale/tailscaled.state
//   PGDATA=/var/lib/postgresql/data su-exec postgres postgres
//   sh -c 'exec python3 -m http.server 8080 >/var/log/http.log 2>&1'
//
// A line is split into words as a shell would, without running one:
// white space (a line break too) separates words; '…' keeps everything literally; "…" keeps
// everything but \" \\ \$ and \`, which lose their backslash; a backslash
// outside quotes keeps the next character. Leading NAME=VALUE words are the
// service's environment. Nothing is expanded: a service that needs
// redirection or variables says `sh -c '…'`.

/// One service of `/etc/sovnet/services`.
public struct ServiceDefinition: Equatable, Sendable, CustomStringConvertible {
    /// The program (looked up in PATH) and its arguments.
    public var arguments: [String]
    /// Variables set for this service on top of init's environment.
    public var environment: [(name: String, value: String)]

    public init(arguments: [String], environment: [(name: String, value: String)] = []) {
        self.arguments = arguments
        self.environment = environment
    }

    /// The program's name, for log lines.
    public var name: String {
        guard let program = arguments.first else { return "?" }
        return String(program.split(separator: "/").last ?? Substring(program))
    }

    public var description: String { arguments.joined(separator: " ") }

    public static func == (left: ServiceDefinition, right: ServiceDefinition) -> Bool {
        left.arguments == right.arguments
            && left.environment.map { "\($0.name)=\($0.value)" } == right.environment.map { "\($0.name)=\($0.value)" }
    }
}

/// A line of a service list that cannot be used.
public struct ServiceListError: Error, Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let reason: String
    public var description: String { "line \(line): \(reason)" }
}

/// Parses service lists and command lines.
public enum ServiceList {
    /// Every service in `text`, in order.
    public static func parse(_ text: String) throws(ServiceListError) -> [ServiceDefinition] {
        var services: [ServiceDefinition] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop { $0 == " " || $0 == "\t" }
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let words = try split(String(trimmed), line: number + 1)
            var environment: [(name: String, value: String)] = []
            var rest = words[...]
            while let word = rest.first, let assignment = Self.assignment(word) {
                environment.append(assignment)
                rest = rest.dropFirst()
            }
            guard !rest.isEmpty else {
                throw ServiceListError(line: number + 1, reason: "only variables, no program to run")
            }
            services.append(ServiceDefinition(arguments: Array(rest), environment: environment))
        }
        return services
    }

    /// Splits one command line into words (the rules at the top of this file).
    public static func split(_ line: String, line number: Int = 1) throws(ServiceListError) -> [String] {
        var words: [String] = []
        var word: [Character] = []
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                if quote == "\"", !["\"", "\\", "$", "`"].contains(character) { word.append("\\") }
                word.append(character)
                escaped = false
                continue
            }
            switch (quote, character) {
            case ("'", "'"), ("\"", "\""):
                quote = nil
            case ("'", _):
                word.append(character)
            case (_, "\\"):
                escaped = true
                inWord = true
            case ("\"", _):
                word.append(character)
            case (nil, "'"), (nil, "\""):
                quote = character
                inWord = true
            case (nil, " "), (nil, "\t"), (nil, "\r"), (nil, "\n"):
                if inWord { words.append(String(word)) }
                word.removeAll()
                inWord = false
            default:
                word.append(character)
                inWord = true
            }
        }
        if escaped { throw ServiceListError(line: number, reason: "a backslash ends the line") }
        if let quote { throw ServiceListError(line: number, reason: "unterminated \(quote) quote") }
        if inWord { words.append(String(word)) }
        return words
    }

    /// `NAME=VALUE` with a shell variable's name, or nil.
    static func assignment(_ word: String) -> (name: String, value: String)? {
        guard let equals = word.firstIndex(of: "="), equals != word.startIndex else { return nil }
        let name = word[..<equals]
        guard let first = name.first, first == "_" || first.isASCII && first.isLetter,
              name.allSatisfy({ $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }) else { return nil }
        return (String(name), String(word[word.index(after: equals)...]))
    }
}
