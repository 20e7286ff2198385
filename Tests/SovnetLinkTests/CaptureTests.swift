import Foundation
import Testing
@testable import SovnetLink

@Suite struct CaptureTests {
    static let captures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("captures")

    func frames(_ name: String) throws -> [CapturedFrame] {
        try PcapReader.frames(at: Self.captures.appendingPathComponent(name).path)
    }

    @Test func writtenFramesReadBackWithTimes() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("out.pcap")
        let original = try frames("gvproxy-v0.6.2-guest-tap.pcap")
        let writer = try PcapWriter(path: path)
        for frame in original {
            writer.write(frame.bytes, time: timeval(tv_sec: frame.seconds, tv_usec: frame.microseconds))
        }
        // Flushed but still open: what a killed process leaves behind.
        #expect(writer.flush() == nil)
        let again = try PcapReader.frames(at: path)
        #expect(again.map(\.bytes) == original.map(\.bytes))
        #expect(again.map(\.seconds) == original.map(\.seconds))
        #expect(again.map(\.microseconds) == original.map(\.microseconds))
        #expect(writer.written == original.count)
    }

    @Test func filterChoosesWhatIsWritten() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("dhcp-and-arp.pcap")
        let original = try frames("gvproxy-v0.6.2-guest-tap.pcap")
        let writer = try PcapWriter(path: path, filter: try PacketFilter("udp port 67 or arp"))
        for frame in original { writer.write(frame.bytes) }
        writer.flush()
        let kept = try PcapReader.frames(at: path)
        let expected = try PcapReader.frames(at: Self.captures.appendingPathComponent("gvproxy-v0.6.2-guest-tap.pcap").path,
                                             filter: "udp port 67 or arp")
        #expect(kept.map(\.bytes) == expected.map(\.bytes))
        #expect(kept.count == 8)
        #expect(writer.filteredOut == original.count - 8)
    }

    @Test func snapshotLengthCutsButKeepsOriginalLength() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("short.pcap")
        let writer = try PcapWriter(path: path, snapshotLength: 64)
        writer.write(testFrame(length: 1514, seed: 1))
        writer.flush()
        let frame = try #require(try PcapReader.frames(at: path).first)
        #expect(frame.bytes.count == 64)
        #expect(frame.originalLength == 1514)
    }

    @Test func errorsNameTheProblem() {
        #expect {
            _ = try PacketFilter("udp port banana")
        } throws: { error in
            guard case .badFilter(let expression, let reason) = error as? CaptureError else { return false }
            return expression == "udp port banana" && !reason.isEmpty
        }
        #expect {
            _ = try PcapWriter(path: "/nonexistent-dir/x.pcap")
        } throws: { error in
            guard case .cannotOpen(let path, let reason) = error as? CaptureError else { return false }
            return path == "/nonexistent-dir/x.pcap" && reason.contains("No such file")
        }
        #expect(throws: CaptureError.self) { _ = try PcapReader(path: "/nonexistent.pcap") }
        // A bad filter on a good file: the handle is released exactly once.
        let good = Self.captures.appendingPathComponent("dns.pcap").path
        for _ in 0..<3 {
            #expect(throws: CaptureError.self) { _ = try PcapReader(path: good, filter: "port banana") }
        }
    }

    /// tshark, the reference reader, decodes what sovnet writes.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark"), "tshark is not installed"))
    func tsharkReadsWhatWeWrite() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("for-tshark.pcap")
        let writer = try PcapWriter(path: path)
        for frame in try frames("dns.pcap") { writer.write(frame.bytes) }
        writer.flush()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        process.arguments = ["-r", path, "-Y", "dns.flags.response == 0", "-T", "fields", "-e", "dns.qry.name"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(text.split(separator: "\n") == [
            "gateway.example.test", "db.example.test", "www.example.test", "example.test", "example.test",
            "_http._tcp.example.test", "missing.example.test", "gateway.example.test",
        ])
    }
}
