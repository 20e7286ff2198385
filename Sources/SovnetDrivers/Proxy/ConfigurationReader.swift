// Reads a YAML configuration file by the nodes Yams composes, so that every
// problem names its key and line: an unknown or misspelt key (with the
// nearest known one suggested), a value of the wrong kind, a value that does
// not parse; a YAML syntax error names its line and column.
import Yams

/// A configuration problem, with where it is.
public struct ConfigurationProblem: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// "line 4: stack.mtu: …", or without a line when the node has none.
    init(_ node: Node?, _ path: String, _ message: String) {
        let line = node?.mark.map { "line \($0.line): " } ?? ""
        description = "\(line)\(path.isEmpty ? "" : "\(path): ")\(message)"
    }
}

/// Typed access to composed YAML nodes, each failure a `ConfigurationProblem`.
struct ConfigurationReader {
    /// The document's root mapping; an empty document is an empty mapping.
    static func root(_ text: String) throws(ConfigurationProblem) -> Node {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationProblem(describe(error))
        } catch {
            throw ConfigurationProblem("YAML: \(error)")
        }
        guard let node else { return Node([] as [(Node, Node)]) }
        guard node.mapping != nil else { throw ConfigurationProblem(node, "", "the file must be a mapping of keys to values") }
        return node
    }

    /// "YAML syntax error at line L, column C: problem".
    static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return "YAML syntax error at line \(mark.line), column \(mark.column): \(problem)"
        case .duplicatedKeysInMapping(let duplicates, let context):
            return "line \(context.mark.line): duplicated key \(duplicates.joined(separator: ", "))"
        default:
            return "YAML: \(error)"
        }
    }

    /// The pairs of a mapping by key, refusing keys not in `known`.
    static func fields(_ node: Node, _ path: String, known: [String]) throws(ConfigurationProblem) -> [String: Node] {
        guard let mapping = node.mapping else { throw ConfigurationProblem(node, path, "want a mapping of keys to values") }
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw ConfigurationProblem(key, path, "a key must be a plain word") }
            guard known.contains(name) else {
                let full = path.isEmpty ? name : "\(path).\(name)"
                let hint = nearest(name, in: known).map { " (did you mean '\($0)'?)" } ?? ""
                throw ConfigurationProblem(key, "", "unknown key '\(full)'\(hint)")
            }
            fields[name] = value
        }
        return fields
    }

    static func string(_ node: Node, _ path: String) throws(ConfigurationProblem) -> String {
        guard let scalar = node.scalar else { throw ConfigurationProblem(node, path, "want a single value") }
        return scalar.string
    }

    static func int(_ node: Node, _ path: String) throws(ConfigurationProblem) -> Int {
        guard let value = node.scalar.flatMap({ Int($0.string) }) else {
            throw ConfigurationProblem(node, path, "want a whole number, not '\(node.scalar?.string ?? "a list or mapping")'")
        }
        return value
    }

    static func bool(_ node: Node, _ path: String) throws(ConfigurationProblem) -> Bool {
        guard let value = node.bool else {
            throw ConfigurationProblem(node, path, "want true or false, not '\(node.scalar?.string ?? "a list or mapping")'")
        }
        return value
    }

    static func list(_ node: Node, _ path: String) throws(ConfigurationProblem) -> [Node] {
        guard let sequence = node.sequence else { throw ConfigurationProblem(node, path, "want a list") }
        return Array(sequence)
    }

    static func strings(_ node: Node, _ path: String) throws(ConfigurationProblem) -> [String] {
        var values: [String] = []
        for item in try list(node, path) { values.append(try string(item, path)) }
        return values
    }

    /// A mapping of plain values, in the file's order, each with its key's node.
    static func pairs(_ node: Node, _ path: String) throws(ConfigurationProblem) -> [(key: String, value: String, node: Node)] {
        guard let mapping = node.mapping else { throw ConfigurationProblem(node, path, "want a mapping") }
        var pairs: [(key: String, value: String, node: Node)] = []
        for (key, value) in mapping {
            pairs.append((try string(key, path), try string(value, path), key))
        }
        return pairs
    }

    /// The known key closest to `name` by edit distance, when it is close.
    static func nearest(_ name: String, in known: [String]) -> String? {
        let scored = known.map { ($0, distance(name.lowercased(), $0.lowercased())) }.min { $0.1 < $1.1 }
        guard let (best, score) = scored, score <= max(2, best.count / 3) else { return nil }
        return best
    }

    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
