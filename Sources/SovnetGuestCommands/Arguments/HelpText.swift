// The help a guest command prints for -h, --help or -help, laid out as
// swift-argument-parser lays out the host's commands' help, so that both
// binaries read alike: overview, usage line, one option per entry with its
// default, wrapped to 80 columns.

extension CommandSpec {
    /// The help of this command, run as `program` (`sovnet`, `sovnet-guest`).
    public func helpText(program: String) -> String {
        var text = HelpLayout.wrap("OVERVIEW: \(abstract)", indent: 0) + "\n\n"
        if !discussion.isEmpty { text += HelpLayout.wrap(discussion, indent: 0) + "\n\n" }
        text += "USAGE: \(program) \(name) [<options>]\n\nOPTIONS:\n"
        let entries = options.map { option -> (String, String) in
            var label = option.singleDash ? "-\(option.name), --\(option.name)" : "--\(option.name)"
            switch option.kind {
            case .value(let placeholder): label += " <\(placeholder)>"
            case .repeatedValue(let placeholder): label += " <\(placeholder)> ..."
            case .toggle: break
            }
            let help = option.defaultValue.map { "\(option.help) (default: \($0.isEmpty ? "''" : $0))" } ?? option.help
            return (label, help)
        } + [("-h, --help", "Show help information.")]
        for (label, help) in entries { text += HelpLayout.entry(label, help) }
        return text
    }

    /// The lines a usage error ends with.
    public func usageLines(program: String) -> String {
        "Usage: \(program) \(name) <options>\n  See '\(program) \(name) --help' for more information.\n"
    }
}

/// Columns and wrapping of help text.
public enum HelpLayout {
    static let width = 80
    static let helpColumn = 26

    /// One option's entry: its label in the first column, the help wrapped in the second.
    public static func entry(_ label: String, _ help: String) -> String {
        let lead = "  " + label
        let wrapped = wrap(help, indent: helpColumn)
        if lead.count + 2 <= helpColumn {
            return lead + String(repeating: " ", count: helpColumn - lead.count) + wrapped.dropFirst(helpColumn) + "\n"
        }
        return lead + "\n" + wrapped + "\n"
    }

    /// `text` in lines of at most `width` columns, each indented by `indent` spaces.
    static func wrap(_ text: String, indent: Int) -> String {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty, indent + line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += line.isEmpty ? String(word) : " " + word
        }
        if !line.isEmpty { lines.append(line) }
        let margin = String(repeating: " ", count: indent)
        return lines.map { margin + $0 }.joined(separator: "\n")
    }
}
