import Foundation
import Testing
@testable import SovnetDrivers

/// `sovnet pcap summary` over the shipped captures: the output matches the
/// reviewed golden files, and its fields agree with tshark's dissection.
@Suite struct CaptureSummaryTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let captures = ["arp-icmp", "dhcp-dhclient", "dhcp-udhcpc", "dns", "gvproxy-v0.6.2-guest-tap", "tcp-http"]

    func summary(_ name: String, filter: String? = nil) throws -> [String] {
        var lines: [String] = []
        try CaptureSummary(path: Self.root.appendingPathComponent("captures/\(name).pcap").path, filter: filter)
            .run { lines.append($0) }
        return lines
    }

    @Test(arguments: captures)
    func matchesGoldenFile(name: String) throws {
        let golden = try String(contentsOf: Self.root.appendingPathComponent("Tests/SovnetDriversTests/Golden/\(name).txt"),
                                encoding: .utf8)
        #expect(try summary(name) == golden.split(separator: "\n").map(String.init))
    }

    @Test func filterAndTotals() throws {
        let lines = try summary("gvproxy-v0.6.2-guest-tap", filter: "arp")
        #expect(lines.count == 5)
        #expect(lines.last == "4 frames, 168 bytes in 0.206 s: ARP 4")
        #expect(lines[1].hasSuffix("ARP reply 192.168.127.1 is-at 5a:94:ef:e4:0c:dd, length 28"))
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        process.arguments = ["-r", Self.root.appendingPathComponent("captures/\(name).pcap").path, "-T", "fields",
                             "-E", "separator=|", "-E", "occurrence=f"] + fields.flatMap { ["-e", $0] }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let rows = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        process.waitUntilExit()
        let lines = try summary(name).dropLast()
        #expect(rows.count == lines.count)
        let dhcpTypes = ["1": "Discover", "2": "Offer", "3": "Request", "5": "ACK", "7": "Release"]
        for (row, line) in zip(rows, lines) {
            let values = row.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            for (field, value) in zip(fields, values) where !value.isEmpty {
                // A SYN's acknowledgment field means nothing, and ICMP fields
                // belong to the datagram tshark reassembles from fragments.
                if field == "tcp.ack_raw" && line.contains("[S]") { continue }
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
