// The DHCP client's state machine under a fuzzer, fed with frames as the
// forwarder feeds it, and with time. Each step's first byte picks an event:
// a frame from the network (a chunk; when it holds a DHCP message, its xid
// is made the client's current one and its UDP checksum cleared, so that
// replies reach the states a server would take the client through), the
// clock moving on (the next byte times 250 ms) with a tick, the link coming
// back, or a release. Every frame the client sends must be a well-formed
// DHCP request, checksums right, and every lease it applies must be usable.
import SovnetCore
import SovnetGuestCore
import SovnetWire

enum DHCPClientTarget {
    static let mac = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)

    static func run(_ bytes: [UInt8]) -> Set<String> {
        var input = FuzzInput(bytes)
        var client = DHCPClient(configuration: DHCPClientConfiguration(mac: mac, hostName: "fuzz"), seed: 7)
        var now = ContinuousClock.Instant.now
        var transactionID: UInt32?
        var reached: Set<String> = []
        func check(_ actions: [DHCPClientAction]) {
            for action in actions {
                switch action {
                case .send(let frame):
                    let message = sentMessage(frame)
                    expect(message != nil, "the client sent a frame that is not a DHCP request")
                    transactionID = message?.transactionID ?? transactionID
                case .apply(let lease, _):
                    reached.insert("applied")
                    expect(lease.address != IPv4Address(0, 0, 0, 0) && (0...32).contains(lease.prefixLength),
                           "applied lease \(lease.address)/\(lease.prefixLength)")
                    expect(client.state == .bound, "a lease applied in \(client.state)")
                case .remove:
                    reached.insert("removed")
                case .event:
                    break
                }
            }
        }
        check(client.start(now: now))
        var steps = 0
        while !input.isAtEnd, steps < 256 {
            steps += 1
            switch input.byte() % 4 {
            case 0:
                var frame = input.chunk()
                if let transactionID { adopt(transactionID, in: &frame) }
                frame.withUnsafeBytes { check(client.receive($0, now: now) ?? []) }
            case 1:
                now += .milliseconds(250 * Int(input.byte()))
                check(client.tick(now: now))
            case 2:
                check(client.linkRestored(now: now))
            default:
                check(client.release(now: now))
            }
            reached.insert(client.state.rawValue)
        }
        return reached
    }

    /// The server's replies among `frames` (to the client's MAC), in order,
    /// with time between them, then a release.
    static func seeds(from frames: [[UInt8]]) -> [[UInt8]] {
        let replies = frames.filter { frame in
            let message = FuzzTarget.udpPayload(frame, port: 68).flatMap { try? DHCPMessage.parse($0) }
            return message.map { $0.clientMAC == mac && [.offer, .ack, .nak].contains($0.messageType) } ?? false
        }
        let exchange: [UInt8] = replies.flatMap { [0] + FuzzInput.chunk($0) }
        let later: [UInt8] = [1, 40, 1, 200]
        let early: [UInt8] = [1, 4, 1, 16]
        return [exchange, exchange + later + exchange + [3], early + exchange + [2] + exchange]
    }

    /// The DHCP message in a frame the client sent, if the frame is one.
    private static func sentMessage(_ frame: [UInt8]) -> DHCPMessage? {
        frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw), ethernet.source == mac,
                  let ip = try? IPv4View(ethernet.payload), ip.protocol == .udp,
                  let udp = try? UDPView(ip.payload, source: ip.source, destination: ip.destination),
                  udp.sourcePort == 68, udp.destinationPort == 67,
                  let message = try? DHCPMessage.parse(udp.payload), message.messageType != nil else { return nil }
            return message
        }
    }

    /// Writes `transactionID` into the DHCP message a frame may carry, and
    /// clears its UDP checksum (0: none, as RFC 768 allows).
    private static func adopt(_ transactionID: UInt32, in frame: inout [UInt8]) {
        let offsets: (udp: Int, dhcp: Int)? = frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw), let ip = try? IPv4View(ethernet.payload, verifyChecksum: false),
                  ip.protocol == .udp, ip.payload.count >= 8 + 8 else { return nil }
            let udp = ethernet.payloadOffset + ip.headerLength
            return (udp, udp + 8)
        }
        guard let offsets else { return }
        for index in 0..<4 { frame[offsets.dhcp + 4 + index] = UInt8(truncatingIfNeeded: transactionID >> (24 - 8 * index)) }
        frame[offsets.udp + 6] = 0
        frame[offsets.udp + 7] = 0
    }
}
