// Subcommands whose drivers are still being built. Each names the issue that
// builds it and exits non-zero, so scripts never mistake it for success.
import ArgumentParser

/// Fails with a message naming the issue that delivers the command.
struct NotYetBuilt: Error, CustomStringConvertible {
    let command: String
    let issue: Int
    var description: String {
        "sovnet \(command) is not built yet (issue #\(issue)); see docs/roadmap.md"
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure latency and throughput through the stack."
    )
    func run() throws { throw NotYetBuilt(command: "bench", issue: 6) }
}
