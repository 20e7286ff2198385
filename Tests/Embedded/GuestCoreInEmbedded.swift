// Built and run by scripts/test (`check_embedded` in scripts/lib.sh), not by
// `swift test`: SovnetWire and SovnetGuestCore compiled as Embedded Swift and
// linked into this program, whose DHCP client must send a DISCOVER for its
// MAC and set its first retransmission 3 to 5 s on (4 s, ±1 s of jitter),
// counted in the Embedded build's own `MonotonicInstant`.
import SovnetGuestCore
import SovnetTime
import SovnetWire

@main
struct GuestCoreInEmbedded {
    static func main() {
        guard let mac = MACAddress("5a:94:ef:e4:0c:ee") else { fatalError("MAC text not read") }
        var client = DHCPClient(configuration: DHCPClientConfiguration(mac: mac, hostName: "embedded"), seed: 7)
        let start = MonotonicInstant(nanoseconds: 5_000_000_000)
        var sent: [UInt8]?
        for action in client.start(now: start) {
            if case .send(let frame) = action, sent == nil { sent = frame }
        }
        guard let frame = sent else { fatalError("no frame sent") }
        // Ethernet (14) + IPv4 (20) + UDP (8): the BOOTP header, whose client
        // hardware address starts at 28; options after the cookie at 236.
        let bootp = 42
        guard frame.count > bootp + 240, Array(frame[bootp + 28..<bootp + 34]) == [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee],
              Array(frame[bootp + 236..<bootp + 240]) == [99, 130, 83, 99] else {
            fatalError("not a BOOTP request from this MAC")
        }
        var options = frame[(bootp + 240)...]
        var messageType: UInt8?
        while let code = options.first, code != 255, options.count >= 2 {
            let length = Int(options[options.startIndex + 1])
            if code == 53, length == 1, options.count >= 3 { messageType = options[options.startIndex + 2] }
            options = options.dropFirst(code == 0 ? 1 : 2 + length)
        }
        guard messageType == 1 else { fatalError("not a DISCOVER") }
        guard let deadline = client.nextDeadline, deadline - start >= .seconds(3), deadline - start <= .seconds(5) else {
            fatalError("retransmission not 3 to 5 s on")
        }
        print("SovnetGuestCore runs as Embedded Swift: DISCOVER sent, retransmission \(Int((deadline - start).components.seconds)) s on")
    }
}
