import Foundation
import Testing
@testable import SovnetDrivers
@testable import SovnetLink

/// `sovnet pcap summary` over the shipped captures: the output matches the
/// reviewed golden files, and its fields agree with tshark's dissection.
@Suite struct CaptureSummaryTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let captures = ["arp-icmp", "dhcp-dhclient", "dhcp-udhcpc", "dhcpv6", "dns", "gvproxy-v0.6.2-guest-tap", "ipv6",
                           "tcp-http"]

    func summary(_ name: String, filter: String? = nil, style: SummaryStyle = SummaryStyle()) throws -> [String] {
        var lines: [String] = []
        try CaptureSummary(path: Self.root.appendingPathComponent("captures/\(name).pcap").path, filter: filter, style: style)
            .run { lines.append($0) }
        return lines
    }

    /// tcpdump's lines for a capture, times in UTC as ours are; with `-v`
    /// an IPv4 frame's two lines are one.
    static func tcpdump(_ name: String, _ flags: [String]) throws -> [String] {
        let text = try output(of: "/usr/bin/tcpdump", ["-n", "-r", root.appendingPathComponent("captures/\(name).pcap").path] + flags)
        var lines: [String] = []
        for line in text.split(separator: "\n") {
            if line.hasPrefix(" ") || line.hasPrefix("\t"), let last = lines.popLast() {
                lines.append(last + "\n" + line)
            } else {
                lines.append(String(line))
            }
        }
        return lines
    }

    /// What a tool prints on standard output, times in UTC.
    static func output(of tool: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.environment = ["TZ": "UTC"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text
    }

    /// The part of a line both tools word alike: ARP, ICMP echo, ICMPv6,
    /// DHCPv6 and TCP lines (TCP up to its length, before any DNS decoding),
    /// and with -v the IPv4 header's line; nil for the others (DHCP and DNS
    /// are sovnet's own words, tcpdump's -v of IPv6 adds checksum verdicts).
    static func comparable(_ line: String, verbose: Bool) -> String? {
        let text = line.dropFirst(16)
        if text.hasPrefix("ARP, ") || text.contains("ethertype ARP") { return line }
        if verbose {
            guard text.hasPrefix("IP (") else { return nil }
            return String(line.prefix { $0 != "\n" })
        }
        if text.contains(": ICMP echo") || text.contains(": ICMP6, ") || text.contains(": HBH ICMP6, ")
            || text.contains(": dhcp6 ") { return line }
        guard text.contains(": Flags ["), let length = line.range(of: #", length \d+"#, options: .regularExpression) else {
            return nil
        }
        return String(line[..<length.upperBound])
    }

    @Test func filterAndTotals() throws {
        let lines = try summary("gvproxy-v0.6.2-guest-tap", filter: "arp")
        #expect(lines.count == 5)
        #expect(lines.last == "4 frames, 168 bytes in 0.206 s: ARP 4")
        #expect(lines[1].hasSuffix("ARP, Reply 192.168.127.1 is-at 5a:94:ef:e4:0c:dd, length 28"))
    }

    /// Line by line, what tcpdump -n prints for the same capture: ARP, ICMP
    /// echo, ICMPv6 (neighbour and router discovery, MLD, echo) and TCP over
    /// IPv4 and IPv6 with its flags, relative sequence numbers and options;
    /// with -e the link-level header, with -v the IPv4 header's fields.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump"), "tcpdump is not installed"),
          arguments: captures)
    func readsAsTcpdumpDoes(name: String) throws {
        for (flags, style) in [([], SummaryStyle()), (["-e"], SummaryStyle(linkHeader: true)),
                               (["-v"], SummaryStyle(verbose: true))] {
            let theirs = try Self.tcpdump(name, flags)
            let ours = try summary(name, style: style).dropLast()
            #expect(theirs.count == ours.count, "\(name) \(flags)")
            var compared = 0
            let verbose = flags == ["-v"]
            for (their, our) in zip(theirs, ours) {
                guard let expected = Self.comparable(their, verbose: verbose) else { continue }
                #expect(Self.comparable(our, verbose: verbose) == expected, "\(name) \(flags)")
                compared += 1
            }
            let nothingToCompare = name.hasPrefix("dhcp-") && !verbose || name == "ipv6" && verbose || name == "dhcpv6" && verbose
            #expect(compared > 0 || nothingToCompare, "\(name) \(flags): nothing compared")
        }
    }

    @Test func aCountStopsTheSummary() throws {
        var lines: [String] = []
        try CaptureSummary(path: Self.root.appendingPathComponent("captures/ipv6.pcap").path, count: 3).run { lines.append($0) }
        #expect(lines.count == 4 && lines.last?.hasPrefix("3 frames, ") == true, "\(lines)")
    }

    @Test func malformedFramesAreDescribedNotFatal() {
        var frame = [UInt8](repeating: 0, count: 12) + [0x08, 0x00, 0x45, 0x00, 0x00, 0xFF]
        frame += [UInt8](repeating: 0, count: 20)
        let (text, kind) = FrameSummary.describe(frame)
        #expect(kind == .malformed)
        #expect(text == "malformed: ipv4: truncated payload")
        #expect(FrameSummary.describe([1, 2, 3]).text == "malformed: ethernet: truncated header")
    }

    /// tshark dissects the same captures; every address, port, TCP number,
    /// DNS name and DHCP type it reports appears in our line for that frame.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark"), "tshark is not installed"),
          arguments: captures)
    func agreesWithTshark(name: String) throws {
        let fields = ["ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
                      "udp.srcport", "dns.qry.name", "dns.a", "dhcp.option.dhcp", "arp.src.proto_ipv4", "icmp.seq"]
        let rows = try Self.output(of: "/usr/bin/tshark", ["-r", Self.root.appendingPathComponent("captures/\(name).pcap").path,
                                                            "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
                                                           + fields.flatMap { ["-e", $0] })
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        let lines = try summary(name).dropLast()
        #expect(rows.count == lines.count)
        let dhcpTypes = ["1": "Discover", "2": "Offer", "3": "Request", "5": "ACK", "7": "Release"]
        for (row, line) in zip(rows, lines) {
            let values = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            for (field, value) in zip(fields, values) where !value.isEmpty {
                // A SYN's acknowledgment field means nothing, and ICMP fields
                // belong to the datagram tshark reassembles from fragments.
                // Sequence numbers are relative after a connection's first
                // segment with ACK, as tcpdump's; tcpdump's own are checked
                // against ours by `readsAsTcpdumpDoes`.
                if field == "tcp.ack_raw" && line.contains("[S]") { continue }
                if field == "tcp.seq_raw" || field == "tcp.ack_raw", !line.contains("[S") { continue }
                if field == "icmp.seq" && line.contains("fragment id") { continue }
                let expected: String = switch field {
                case "tcp.seq_raw": "seq \(value)"
                case "tcp.ack_raw": "ack \(value)"
                case "tcp.len": "length \(value)"
                case "dns.qry.name": " \(value)."
                case "dhcp.option.dhcp": "DHCP \(dhcpTypes[value] ?? "?")"
                case "icmp.seq": "seq \(value)"
                default: value
                }
                #expect(line.contains(expected), "\(field)=\(value) missing from: \(line)")
            }
        }
    }
}
