import ArgumentParser
import SovnetDrivers

struct PcapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcap",
        abstract: "Read packet captures.",
        subcommands: [Summary.self]
    )

    struct Summary: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one line per frame, like tcpdump -n -r, and a totals line (times in UTC)."
        )

        @Argument(help: "A pcap or pcapng file of Ethernet frames.")
        var file: String

        @Option(help: "A BPF filter expression, as tcpdump takes (e.g. 'udp port 67 or arp').")
        var filter: String?

        func run() throws {
            try CaptureSummary(path: file, filter: filter).run { print($0) }
        }
    }
}
