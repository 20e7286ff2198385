// `sovnet pcap summary`: a line per frame of a capture file (`-` for
// standard input), as tcpdump -n -r prints them, and a totals line.
import SovnetLink

/// Summarises a capture file.
public struct CaptureSummary {
    public let path: String
    public let filter: String?
    public let style: SummaryStyle
    /// Stop after this many frames (tcpdump's -c).
    public let count: Int?

    public init(path: String, filter: String? = nil, style: SummaryStyle = SummaryStyle(), count: Int? = nil) {
        self.path = path
        self.filter = filter
        self.style = style
        self.count = count
    }

    /// Writes a line per frame and the totals line through `emit`.
    public func run(_ emit: (String) -> Void) throws {
        let reader = try PcapReader(path: path, filter: filter)
        guard reader.linkType == 1 else {
            throw CaptureError.cannotOpen(path: path, reason: "link type \(reader.linkType) is not Ethernet")
        }
        var counts: [FrameKind: Int] = [:]
        var frames = 0
        var bytes = 0
        var first: Double?
        var last = 0.0
        let summary = FrameSummary(style: style)
        for frame in reader {
            if let count, frames >= count { break }
            let (text, kind) = summary.describe(frame.bytes)
            emit("\(Self.timestamp(frame.seconds, frame.microseconds)) \(text)")
            counts[kind, default: 0] += 1
            frames += 1
            bytes += frame.originalLength
            let time = Double(frame.seconds) + Double(frame.microseconds) / 1e6
            first = first ?? time
            last = time
        }
        if let failure = reader.failure { throw failure }
        let span = first.map { last - $0 } ?? 0
        let kinds = FrameKind.allCases.compactMap { kind in counts[kind].map { "\(kind.rawValue) \($0)" } }
        emit("\(frames) frames, \(bytes) bytes in \(Self.seconds(span)) s"
             + (kinds.isEmpty ? "" : ": " + kinds.joined(separator: ", ")))
    }

    /// `HH:MM:SS.uuuuuu` in UTC.
    static func timestamp(_ seconds: Int, _ microseconds: Int) -> String {
        let day = ((seconds % 86_400) + 86_400) % 86_400
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let micro = String(microseconds)
        return "\(two(day / 3600)):\(two(day / 60 % 60)):\(two(day % 60))."
            + String(repeating: "0", count: max(0, 6 - micro.count)) + micro
    }

    static func seconds(_ value: Double) -> String {
        let millis = Int((value * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
