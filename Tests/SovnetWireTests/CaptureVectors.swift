import Foundation
import SovnetLink

/// The real captures in `captures/`, used as test vectors.
enum CaptureVectors {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("captures")

    static let files = [
        "dhcp-udhcpc.pcap", "dhcp-dhclient.pcap", "arp-icmp.pcap", "dns.pcap", "tcp-http.pcap",
        "gvproxy-v0.6.2-guest-tap.pcap",
    ]

    static func frames(_ file: String, filter: String? = nil) throws -> [[UInt8]] {
        try PcapReader.frames(at: directory.appendingPathComponent(file).path, filter: filter).map(\.bytes)
    }

    static func allFrames() throws -> [[UInt8]] {
        try files.flatMap { try frames($0) }
    }
}

/// Hex text to bytes, ignoring spaces and newlines.
func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    return stride(from: 0, to: digits.count, by: 2).map {
        let start = digits.index(digits.startIndex, offsetBy: $0)
        return UInt8(digits[start...digits.index(after: start)], radix: 16)!
    }
}
