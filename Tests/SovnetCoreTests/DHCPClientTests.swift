import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetGuestCore

/// The DHCP client driven by a fake clock and by server replies recorded
/// from dnsmasq (captures/dhcp-udhcpc.pcap) and gvproxy. The recorded replies
/// are replayed byte for byte except the transaction ID, which is rewritten to
/// the one this client chose (and the UDP checksum, cleared).
@Suite struct DHCPClientTests {
    static let captures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("captures")
    static let mac = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    static let dnsmasq = IPv4Address(192, 168, 127, 1)
    static let dnsmasqMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD)
    let t0 = ContinuousClock.now

    /// dnsmasq's OFFER and ACK, as recorded.
    static func recordedReplies(_ file: String = "dhcp-udhcpc.pcap") throws -> (offer: [UInt8], ack: [UInt8]) {
        let frames = try PcapReader.frames(at: captures.appendingPathComponent(file).path, filter: "udp src port 67")
        return (frames[0].bytes, frames[1].bytes)
    }

    func client(seed: UInt64 = 42) -> DHCPClient {
        DHCPClient(configuration: DHCPClientConfiguration(mac: Self.mac, hostName: "guest"), seed: seed)
    }

    func at(_ seconds: Double) -> ContinuousClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }

    /// The DHCP message in the single frame `actions` send.
    func sent(_ actions: [DHCPClientAction]) throws -> (message: DHCPMessage, ip: IPv4Header, ethernet: EthernetHeader) {
        let frames = actions.compactMap { action -> [UInt8]? in
            if case .send(let frame) = action { return frame }
            return nil
        }
        try #require(frames.count == 1, "expected one frame, got \(frames.count)")
        return try frames[0].withUnsafeBytes { raw in
            let ethernet = try EthernetView(raw)
            let ip = try IPv4View(ethernet.payload)
            let udp = try UDPView(ip.payload, source: ip.source, destination: ip.destination)
            #expect(udp.sourcePort == 68 && udp.destinationPort == 67)
            return (try DHCPMessage.parse(udp.payload), IPv4Header(ip), EthernetHeader(ethernet))
        }
    }

    /// A recorded reply with its xid set to `xid` (and optional edits to the message).
    func replay(_ frame: [UInt8], xid: UInt32, edit: ((inout DHCPMessage) -> Void)? = nil) throws -> [UInt8] {
        var bytes = frame
        if let edit {
            var message = try DHCPMessage.parse(Array(bytes[42...]))
            edit(&message)
            let payload = try message.bytes()
            bytes = Array(bytes[..<42]) + payload
            bytes.replaceSubrange(16..<18, with: [UInt8((28 + payload.count) >> 8), UInt8((28 + payload.count) & 0xFF)])
            bytes.replaceSubrange(38..<40, with: [UInt8((8 + payload.count) >> 8), UInt8((8 + payload.count) & 0xFF)])
            bytes.replaceSubrange(24..<26, with: [0, 0])
            let checksum = bytes[14..<34].withUnsafeBytes { InternetChecksum.of($0) }
            bytes.replaceSubrange(24..<26, with: [UInt8(checksum >> 8), UInt8(checksum & 0xFF)])
        }
        bytes.replaceSubrange(46..<50, with: [UInt8(xid >> 24), UInt8((xid >> 16) & 0xFF), UInt8((xid >> 8) & 0xFF), UInt8(xid & 0xFF)])
        bytes.replaceSubrange(40..<42, with: [0, 0])
        return bytes
    }

    func deliver(_ client: inout DHCPClient, _ frame: [UInt8], at time: ContinuousClock.Instant) -> [DHCPClientAction] {
        frame.withUnsafeBytes { client.receive($0, now: time) } ?? []
    }

    func events(_ actions: [DHCPClientAction]) -> [DHCPClientEvent] {
        actions.compactMap { if case .event(let event) = $0 { event } else { nil } }
    }

    /// Runs INIT → SELECTING → REQUESTING → BOUND against dnsmasq's replies.
    func bind(_ client: inout DHCPClient) throws -> [DHCPClientAction] {
        let (offer, ack) = try Self.recordedReplies()
        let discover = try sent(client.start(now: at(0)))
        let request = try sent(deliver(&client, replay(offer, xid: discover.message.transactionID), at: at(0.001)))
        return deliver(&client, try replay(ack, xid: request.message.transactionID), at: at(0.002))
    }

    @Test func initSelectingRequestingBound() throws {
        var client = client()
        let (offer, ack) = try Self.recordedReplies()
        let discover = try sent(client.start(now: at(0)))
        #expect(client.state == .selecting)
        #expect(discover.message.messageType == .discover)
        #expect(discover.ethernet.destination == .broadcast && discover.ip.destination == .broadcast)
        #expect(discover.ip.source == .any)
        #expect(discover.message.options.parameterRequestList.map(\.rawValue) == [1, 3, 6, 15, 26, 51, 54, 58, 59, 119])
        #expect(discover.message.options.clientIdentifier == [1] + Self.mac.octets)
        #expect(discover.message.options.hostName == "guest")

        let request = try sent(deliver(&client, try replay(offer, xid: discover.message.transactionID), at: at(0.001)))
        #expect(client.state == .requesting)
        #expect(request.message.messageType == .request)
        #expect(request.message.transactionID == discover.message.transactionID)
        #expect(request.message.options.requestedIPAddress == IPv4Address(192, 168, 127, 25))
        #expect(request.message.options.serverIdentifier == Self.dnsmasq)

        let actions = deliver(&client, try replay(ack, xid: request.message.transactionID), at: at(0.003))
        #expect(client.state == .bound)
        let lease = try #require(client.lease)
        #expect(actions.contains(.apply(lease, previous: nil)))
        #expect(lease.address == IPv4Address(192, 168, 127, 25) && lease.prefixLength == 24)
        #expect(lease.router == Self.dnsmasq && lease.dnsServers == [Self.dnsmasq])
        #expect(lease.mtu == 1500 && lease.domainName == "example.test")
        #expect(lease.searchDomains == ["example.test", "vm.example.test"])
        #expect(lease.serverMAC == Self.dnsmasqMAC)
        #expect(lease.leaseTime == 3600 && lease.renewalTime == 1800 && lease.rebindingTime == 3150)
        #expect(client.nextDeadline == at(0.001) + .seconds(1800))
        guard case .bound(_, let elapsed)? = events(actions).last else {
            Issue.record("no bound event")
            return
        }
        #expect(elapsed == .milliseconds(3))
    }

    @Test func gvproxyRepliesBindToo() throws {
        var client = client()
        let (offer, ack) = try Self.recordedReplies("gvproxy-v0.6.2-guest-tap.pcap")
        let discover = try sent(client.start(now: at(0)))
        let request = try sent(deliver(&client, try replay(offer, xid: discover.message.transactionID), at: at(0.001)))
        _ = deliver(&client, try replay(ack, xid: request.message.transactionID), at: at(0.002))
        #expect(client.state == .bound)
        #expect(client.lease?.address == IPv4Address(192, 168, 127, 2))
    }

    /// RFC 2131 §4.1: 4, 8, 16, 32, 64, 64 s, each within ±1 s.
    @Test func discoverRetransmitsWithBackoffAndJitter() throws {
        var client = client(seed: 7)
        let first = try sent(client.start(now: at(0)))
        var last = at(0)
        var gaps: [Double] = []
        var seen: Set<Int> = []
        for _ in 0..<6 {
            let deadline = try #require(client.nextDeadline)
            let gap = deadline - last
            gaps.append(Double(gap.components.seconds) + Double(gap.components.attoseconds) / 1e18)
            #expect(client.tick(now: deadline - .milliseconds(1)).isEmpty, "nothing before the deadline")
            let again = try sent(client.tick(now: deadline))
            #expect(again.message.messageType == .discover)
            #expect(again.message.transactionID == first.message.transactionID)
            seen.insert(Int(again.message.seconds))
            last = deadline
        }
        for (gap, nominal) in zip(gaps, [4.0, 8, 16, 32, 64, 64]) {
            #expect(abs(gap - nominal) <= 1.0, "gap \(gap) for \(nominal)")
        }
        #expect(Set(gaps).count > 1, "jitter varies the gaps")
        #expect(seen.contains { $0 > 100 }, "secs counts from the start of the exchange")
    }

    @Test func requestingGivesUpAndStartsOver() throws {
        var client = client()
        let (offer, _) = try Self.recordedReplies()
        let discover = try sent(client.start(now: at(0)))
        _ = deliver(&client, try replay(offer, xid: discover.message.transactionID), at: at(0))
        var now = at(0)
        for _ in 1..<4 {
            now = try #require(client.nextDeadline)
            #expect(try sent(client.tick(now: now)).message.messageType == .request)
        }
        now = try #require(client.nextDeadline)
        let restart = try sent(client.tick(now: now))
        #expect(restart.message.messageType == .discover)
        #expect(restart.message.transactionID != discover.message.transactionID)
        #expect(client.state == .selecting)
    }

    @Test func renewingAtT1IsUnicastAndRenews() throws {
        var client = client()
        let (_, ack) = try Self.recordedReplies()
        _ = try bind(&client)
        let t1 = at(0.001) + .seconds(1800)
        #expect(client.nextDeadline == t1)
        let renew = try sent(client.tick(now: t1))
        #expect(client.state == .renewing)
        #expect(renew.message.clientAddress == IPv4Address(192, 168, 127, 25))
        #expect(renew.message.options.serverIdentifier == nil && renew.message.options.requestedIPAddress == nil)
        #expect(renew.ip.source == IPv4Address(192, 168, 127, 25) && renew.ip.destination == Self.dnsmasq)
        #expect(renew.ethernet.destination == Self.dnsmasqMAC)
        // The next try comes after half the time to T2 (675 s), at least 60 s.
        #expect(client.nextDeadline == t1 + .milliseconds(675_000))
        let actions = deliver(&client, try replay(ack, xid: renew.message.transactionID), at: t1 + .seconds(1))
        #expect(client.state == .bound)
        #expect(!actions.contains { if case .apply = $0 { true } else { false } }, "same settings: nothing to reapply")
        #expect(events(actions).contains { if case .renewed = $0 { true } else { false } })
        #expect(client.nextDeadline == t1 + .seconds(1800))
    }

    @Test func rebindingAtT2ThenExpiry() throws {
        var client = client()
        _ = try bind(&client)
        let start = at(0.001)
        _ = client.tick(now: start + .seconds(1800))
        var now = try #require(client.nextDeadline)
        while now < start + .seconds(3150) {
            #expect(try sent(client.tick(now: now)).message.messageType == .request)
            now = try #require(client.nextDeadline)
        }
        let rebind = try sent(client.tick(now: start + .seconds(3150)))
        #expect(client.state == .rebinding)
        #expect(rebind.ip.destination == .broadcast && rebind.message.clientAddress == IPv4Address(192, 168, 127, 25))
        // Half of the 450 s left is 225 s; then the 60-second floor, then expiry.
        #expect(client.nextDeadline == start + .seconds(3150 + 225))
        _ = client.tick(now: start + .seconds(3375))
        #expect(client.nextDeadline == start + .seconds(3487) + .milliseconds(500))
        _ = client.tick(now: start + .milliseconds(3_487_500))
        #expect(client.nextDeadline == start + .milliseconds(3_547_500))
        _ = client.tick(now: start + .milliseconds(3_547_500))
        #expect(client.nextDeadline == start + .seconds(3600))
        let lease = try #require(client.lease)
        let actions = client.tick(now: start + .seconds(3600))
        #expect(actions.contains(.remove(lease)))
        #expect(events(actions).contains(.expired(lease.address)))
        #expect(client.state == .selecting && client.lease == nil)
        #expect(try sent(actions).message.messageType == .discover)
    }

    @Test func nakWhileRenewingRemovesTheAddress() throws {
        var client = client()
        let (_, ack) = try Self.recordedReplies()
        _ = try bind(&client)
        let lease = try #require(client.lease)
        let renew = try sent(client.tick(now: at(0.001) + .seconds(1800)))
        let nak = try replay(ack, xid: renew.message.transactionID) { message in
            var options = DHCPOptions()
            options.messageType = .nak
            options.serverIdentifier = Self.dnsmasq
            options[.message] = Array("wrong network".utf8)
            message.options = options
            message.yourAddress = .any
        }
        let now = at(0.001) + .seconds(1801)
        let actions = deliver(&client, nak, at: now)
        #expect(actions.contains(.remove(lease)))
        #expect(events(actions).contains(.nak(server: Self.dnsmasq, message: "wrong network")))
        #expect(client.state == .initial && client.lease == nil)
        let deadline = try #require(client.nextDeadline)
        #expect(deadline > now && deadline <= now + .seconds(1))
        #expect(try sent(client.tick(now: deadline)).message.messageType == .discover)
    }

    @Test func initRebootAfterReconnect() throws {
        var client = client()
        let (_, ack) = try Self.recordedReplies()
        _ = try bind(&client)
        let now = at(60)
        let request = try sent(client.linkRestored(now: now))
        #expect(client.state == .rebooting)
        #expect(request.message.messageType == .request)
        #expect(request.message.options.requestedIPAddress == IPv4Address(192, 168, 127, 25))
        #expect(request.message.options.serverIdentifier == nil)
        #expect(request.message.clientAddress == .any && request.ip.destination == .broadcast)
        let actions = deliver(&client, try replay(ack, xid: request.message.transactionID), at: now + .milliseconds(2))
        #expect(client.state == .bound)
        #expect(!actions.contains { if case .apply = $0 { true } else { false } })
        #expect(client.nextDeadline == now + .seconds(1800))
    }

    @Test func badRepliesAreIgnoredWithAReason() throws {
        let (offer, _) = try Self.recordedReplies()
        var client = client()
        let xid = try sent(client.start(now: at(0))).message.transactionID
        let cases: [(String, [UInt8])] = [
            ("is not ours", try replay(offer, xid: xid &+ 1)),
            ("chaddr", try replay(offer, xid: xid) { $0.clientHardwareAddress = [2, 0, 0, 0, 0, 1] }),
            ("lease time 0", try replay(offer, xid: xid) { $0.options.leaseTime = 0 }),
            ("no lease time", try replay(offer, xid: xid) { $0.options.leaseTime = nil }),
            ("no server identifier", try replay(offer, xid: xid) { $0.options.serverIdentifier = nil }),
            ("outside", try replay(offer, xid: xid) { $0.options.routers = [IPv4Address(10, 0, 0, 1)] }),
            ("unusable address", try replay(offer, xid: xid) { $0.yourAddress = .any }),
        ]
        for (reason, frame) in cases {
            let actions = deliver(&client, frame, at: at(0.5))
            let ignored = events(actions).contains { if case .ignored(let text) = $0 { text.contains(reason) } else { false } }
            #expect(ignored, "\(reason): \(actions)")
            #expect(client.state == .selecting)
        }
        // Frames that are not DHCP replies to us are not the client's business.
        #expect(Array(offer[..<42]).withUnsafeBytes { client.receive($0, now: at(1)) } == nil)
    }

    @Test func releaseOnShutdown() throws {
        var client = client()
        _ = try bind(&client)
        let lease = try #require(client.lease)
        let actions = client.release(now: at(100))
        let release = try sent(actions)
        #expect(release.message.messageType == .release)
        #expect(release.message.clientAddress == lease.address)
        #expect(release.message.options.serverIdentifier == Self.dnsmasq)
        #expect(release.ip.destination == Self.dnsmasq && release.ethernet.destination == Self.dnsmasqMAC)
        #expect(actions.contains(.remove(lease)))
        #expect(client.state == .stopped && client.nextDeadline == nil)
    }
}
