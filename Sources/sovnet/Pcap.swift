import ArgumentParser

struct PcapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcap",
        abstract: "Read packet captures.",
        subcommands: []
    )
}
