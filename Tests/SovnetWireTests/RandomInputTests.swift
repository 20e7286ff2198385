import Testing
@testable import SovnetWire

/// Random bytes, and real frames with random damage, go into every parser.
/// A parser may accept or reject them but must never trap or read out of
/// bounds (run under `-sanitize=address` to see the second).
@Suite struct RandomInputTests {
    /// Runs every parser over `bytes`, returning how many accepted them.
    @discardableResult
    func parseEverything(_ bytes: [UInt8]) -> Int {
        var accepted = 0
        func attempt(_ body: () throws -> Void) {
            if (try? body()) != nil { accepted += 1 }
        }
        attempt { _ = try EthernetHeader.parse(bytes) }
        attempt { _ = try ARPPacket.parse(bytes) }
        attempt { _ = try IPv4Header.parse(bytes, verifyChecksum: false) }
        attempt { _ = try ICMPv4Header.parse(bytes, verifyChecksum: false) }
        attempt { _ = try UDPHeader.parse(bytes) }
        attempt { _ = try TCPHeader.parse(bytes) }
        attempt { _ = try DHCPMessage.parse(bytes) }
        attempt { _ = try DNSMessage.parse(bytes) }
        bytes.withUnsafeBytes { raw in
            // The layered path a packet loop takes, at every offset it might start.
            for start in [0, 14, 18, 34, 42] where start <= raw.count {
                let tail = raw.suffix(from: start)
                if let ethernet = try? EthernetView(tail), let ip = try? IPv4View(ethernet.payload, verifyChecksum: false) {
                    _ = ip.payload.count + ip.fragmentOffset
                    if let tcp = try? TCPView(ip.payload) { _ = try? tcp.options() }
                    if let udp = try? UDPView(ip.payload) {
                        _ = try? DNSMessage.parse(udp.payload)
                        _ = try? DHCPMessage.parse(udp.payload)
                        _ = try? DNSView(udp.payload).firstQuestion()
                    }
                    _ = try? ICMPv4View(ip.payload, verifyChecksum: false).body.count
                }
                _ = try? DHCPView(tail).messageType
            }
        }
        return accepted
    }

    @Test func randomBytes() {
        var generator = SplitMix64(seed: 1)
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 700)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            parseEverything(bytes)
        }
    }

    @Test func mutatedCaptureFrames() throws {
        let frames = try CaptureVectors.allFrames()
        var generator = SplitMix64(seed: 2)
        var accepted = 0
        for round in 0..<30_000 {
            var bytes = frames[round % frames.count]
            switch generator.next() % 4 {
            case 0:
                for _ in 0...(generator.next() % 8) where !bytes.isEmpty {
                    bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                }
            case 1:
                bytes = Array(bytes.prefix(Int(generator.next() % UInt64(bytes.count + 1))))
            case 2:
                let cut = Int(generator.next() % UInt64(bytes.count + 1))
                bytes = Array(bytes[cut...])
            default:
                let at = Int(generator.next() % UInt64(bytes.count))
                bytes[at] = [0x00, 0xFF, 0xC0, 0x3F, 0x80][Int(generator.next() % 5)]
            }
            accepted += parseEverything(bytes)
        }
        // Most damaged frames still parse at some layer: the mutations reach deep.
        #expect(accepted > 30_000)
    }
}
