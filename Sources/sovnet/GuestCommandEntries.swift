// `sovnet forward` and `sovnet init` are the guest's commands
// (SovnetGuestCommands), which parse their own command lines so that
// sovnet-guest can leave swift-argument-parser out. These entries list them
// in `sovnet --help` and hand them every word after their name, `--help`
// included (they take no help flag of swift-argument-parser's).
import ArgumentParser
import SovnetGuestCommands

struct ForwardEntry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: ForwardCommand.spec.name, abstract: ForwardCommand.spec.abstract, helpNames: [])

    @Argument(parsing: .captureForPassthrough, help: "forward's options; see 'sovnet forward --help'.")
    var arguments: [String] = []

    func run() {
        ForwardCommand.command.main(arguments, program: "sovnet")
    }
}

struct InitEntry: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: InitCommand.spec.name, abstract: InitCommand.spec.abstract, helpNames: [])

    @Argument(parsing: .captureForPassthrough, help: "init's options; see 'sovnet init --help'.")
    var arguments: [String] = []

    func run() {
        InitCommand.command.main(arguments, program: "sovnet")
    }
}
