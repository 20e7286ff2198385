import ArgumentParser
import SovnetDrivers
import SovnetLink

struct PcapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pcap",
        abstract: "Read packet captures.",
        subcommands: [Summary.self]
    )

    struct Summary: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one line per frame, like tcpdump -n -r, and a totals line (times in UTC).",
            discussion: """
                The filter is a BPF expression as tcpdump takes it, after the file \
                (sovnet pcap summary guest.pcap tcp port 80) or with --filter. \
                FILE - reads standard input, so a live capture can be followed: \
                sovnet proxy ... -pcap - | sovnet pcap summary -.
                """
        )

        @Argument(help: "A pcap or pcapng file of Ethernet frames ('-': standard input).", completion: .file(extensions: ["pcap", "pcapng"]))
        var file: String

        @Argument(help: "A BPF filter expression, as tcpdump takes it (e.g. udp port 67 or arp).")
        var expression: [String] = []

        @Option(help: "A BPF filter expression (the same as the trailing words).")
        var filter: String?

        @Option(name: .customShort("c"), help: "Stop after this many frames.")
        var count: Int?

        @Flag(name: .customShort("e"), help: "Print the link-level header on each line.")
        var linkHeader = false

        @Flag(name: .customShort("v"), help: "Print the IP header's fields (TTL, ID, flags, lengths).")
        var verbose = false

        func run() throws {
            let filter = try Self.reportingUsage(chosenFilter)
            try CaptureSummary(path: file, filter: filter, style: SummaryStyle(linkHeader: linkHeader, verbose: verbose),
                               count: count).run { print($0) }
        }

        /// The filter from the trailing words or --filter, once the options are checked.
        private func chosenFilter() throws -> String? {
            if filter != nil, !expression.isEmpty {
                throw ValidationError("give the filter after the file or with --filter, not both")
            }
            if let count, count < 1 { throw ValidationError("-c wants a count of at least 1") }
            return expression.isEmpty ? filter : expression.joined(separator: " ")
        }
    }
}
