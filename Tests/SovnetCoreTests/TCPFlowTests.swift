import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore

/// A host socket in memory: what the flow wrote, bytes waiting for the guest,
/// and a send buffer that can fill up.
final class MemorySocket: FlowSocket {
    var written: [UInt8] = []
    var room = 1 << 20
    var incoming: [UInt8] = []
    var peekOffset = 0
    var endOfStream = false
    var failure: Int32?
    var closed: Bool?
    var shutDown = false
    var watchingWritable = false
    var rewinds = 0
    var peeks = 0
    /// What a connect under way ends with (0: connected).
    var connectResult: Int32 = 0

    func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if failure != nil { return nil }
        let taken = min(bytes.count, room)
        written += bytes.prefix(taken)
        room -= taken
        return taken
    }

    func peek(into buffer: UnsafeMutableRawBufferPointer) -> PeekResult {
        peeks += 1
        if let failure { return .failed(failure) }
        let available = incoming.count - peekOffset
        guard available > 0 else { return endOfStream ? .endOfStream : .wouldBlock }
        let count = min(available, buffer.count)
        for index in 0..<count { buffer[index] = incoming[peekOffset + index] }
        peekOffset += count
        return .data(count)
    }

    func consume(_ count: Int) {
        incoming.removeFirst(count)
        peekOffset -= count
    }

    func rewind() {
        peekOffset = 0
        rewinds += 1
    }

    var writeSpace: Int { room }
    func shutdownWrite() { shutDown = true }
    func wantWritable(_ wanted: Bool) { watchingWritable = wanted }
    func finishConnect() -> Int32 { connectResult }
    func close(reset: Bool) { closed = reset }
}

/// The NAT's TCP toward a guest, driven by a real Linux SYN (recorded through
/// gvproxy) and segments built like the guest's, with a fake clock.
@Suite struct TCPFlowTests {
    static let guest = IPv4Address(192, 168, 127, 2)
    static let remote = IPv4Address(192, 168, 127, 254)
    static let guestMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    static let link = GuestLink(port: PortID(1), mac: guestMAC)
    let start = ContinuousClock.now

    /// A segment the guest sends; seq and ack are absolute.
    struct Segment {
        var frame: [UInt8]
        init(_ flags: TCPFlags, seq: UInt32, ack: UInt32 = 0, window: UInt16 = 502, payload: [UInt8] = [],
             options: TCPOptions = TCPOptions(), sourcePort: UInt16 = 40000, destinationPort: UInt16 = 8080) {
            var out: [UInt8] = []
            let header = TCPHeader(sourcePort: sourcePort, destinationPort: destinationPort, sequenceNumber: seq,
                                   acknowledgmentNumber: ack, flags: flags, window: window, options: options)
            EthernetHeader(destination: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), source: TCPFlowTests.guestMAC,
                           etherType: .ipv4).emit(into: &out)
            IPv4Header(source: TCPFlowTests.guest, destination: TCPFlowTests.remote, protocol: .tcp,
                       payloadLength: header.bufferLength + payload.count).emit(into: &out)
            header.emit(payload: payload, source: TCPFlowTests.guest, destination: TCPFlowTests.remote, into: &out)
            frame = out
        }
        init(recorded: [UInt8]) { frame = recorded }

        func withView<T>(_ body: (TCPView) throws -> T) throws -> T {
            try frame.withUnsafeBytes { bytes in
                let ip = try IPv4View(try EthernetView(bytes).payload)
                return try body(try TCPView(ip.payload, source: ip.source, destination: ip.destination))
            }
        }
    }

    /// What the flow sent the guest, parsed.
    struct Sent {
        var header: TCPHeader
        var payload: [UInt8]
        var icmp: ICMPv4Header?
    }

    static func drain(_ frames: GuestFrames) throws -> [Sent] {
        var result: [Sent] = []
        try frames.storage.withUnsafeBytes { bytes in
            for frame in frames.frames {
                let ethernet = try EthernetView(UnsafeRawBufferPointer(rebasing: bytes[frame.range]))
                #expect(ethernet.destination == guestMAC)
                let ip = try IPv4View(ethernet.payload)
                #expect(ip.destination == guest && ip.source == remote)
                if ip.protocol == .icmp {
                    let icmp = try ICMPv4View(ip.payload)
                    result.append(Sent(header: TCPHeader(sourcePort: 0, destinationPort: 0, sequenceNumber: 0, flags: [], window: 0),
                                       payload: Array(icmp.body), icmp: ICMPv4Header(icmp)))
                    continue
                }
                let tcp = try TCPView(ip.payload, source: ip.source, destination: ip.destination)
                result.append(Sent(header: try TCPHeader(tcp), payload: Array(tcp.payload)))
            }
        }
        frames.removeAll()
        return result
    }

    /// The recorded SYN of a Linux guest (MSS 1460, window scale 10) to the host alias.
    static func recordedSYN() throws -> Segment {
        let frames = try PcapReader.frames(at: VirtualNetworkTests.gvproxyCapture,
                                           filter: "tcp[tcpflags] == tcp-syn and dst host 192.168.127.254").map(\.bytes)
        return Segment(recorded: try #require(frames.first))
    }

    func makeFlow(socket: MemorySocket, mtu: Int = 1500) throws -> (TCPFlow, GuestFrames, Segment) {
        let frames = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: mtu)
        let context = TCPContext(settings: TCPSettings(mtu: mtu), frames: frames)
        let syn = try Self.recordedSYN()
        let flow = try syn.withView { view in
            TCPFlow(guestSYN: view, key: FlowKey(guest: .v4(Self.guest), guestPort: view.sourcePort, remote: .v4(Self.remote),
                                                 remotePort: view.destinationPort),
                    link: Self.link, socket: socket, context: context, now: start)
        }
        return (flow, frames, syn)
    }

    /// A flow taken through the handshake: returns the guest's next sequence
    /// number and the flow's first data sequence number.
    func established(socket: MemorySocket, mtu: Int = 1500) throws -> (TCPFlow, GuestFrames, seq: UInt32, ack: UInt32, ports: (UInt16, UInt16)) {
        let (flow, frames, syn) = try makeFlow(socket: socket, mtu: mtu)
        let (guestISN, ports) = try syn.withView { ($0.sequenceNumber, ($0.sourcePort, $0.destinationPort)) }
        flow.hostConnected(now: start)
        let synAck = try #require(try Self.drain(frames).first)
        let seq = guestISN &+ 1
        let ack = synAck.header.sequenceNumber &+ 1
        try Segment([.ack], seq: seq, ack: ack, window: 502, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(flow.stateName == "established")
        return (flow, frames, seq, ack, ports)
    }

    @Test func synIsAnsweredOnlyOnceTheHostConnected() throws {
        let socket = MemorySocket()
        let (flow, frames, syn) = try makeFlow(socket: socket)
        #expect(frames.isEmpty)
        #expect(flow.stateName == "connecting")
        try syn.withView { flow.receive($0, now: start) }
        #expect(frames.isEmpty, "a repeated SYN while connecting gets no answer")
        flow.hostConnected(now: start)
        let sent = try Self.drain(frames)
        #expect(sent.count == 1)
        let synAck = sent[0].header
        let guestISN = try syn.withView { $0.sequenceNumber }
        #expect(synAck.flags == [.syn, .ack])
        #expect(synAck.acknowledgmentNumber == guestISN &+ 1)
        #expect(synAck.options.maximumSegmentSize == 1460)
        #expect(synAck.options.windowScale == 7, "the guest offered window scaling, so the flow offers its own")
        #expect(synAck.sourcePort == (try syn.withView { $0.destinationPort }))
    }

    @Test func refusedConnectGivesRSTAndUnreachableGivesICMP() throws {
        let socket = MemorySocket()
        let (flow, frames, syn) = try makeFlow(socket: socket)
        flow.hostConnectFailed(111)
        let reset = try #require(try Self.drain(frames).first)
        #expect(reset.header.flags == [.rst, .ack])
        #expect(reset.header.acknowledgmentNumber == (try syn.withView { $0.sequenceNumber }) &+ 1)
        #expect(flow.phase == .closed)

        let (other, otherFrames, _) = try makeFlow(socket: MemorySocket())
        other.hostConnectFailed(113)
        let icmp = try #require(try Self.drain(otherFrames).first?.icmp)
        #expect(icmp.type == .destinationUnreachable && icmp.code == ICMPv4UnreachableCode.host)
    }

    @Test func connectTimeoutResetsTheGuest() throws {
        let (flow, frames, _) = try makeFlow(socket: MemorySocket())
        flow.tick(now: start + .seconds(29))
        #expect(frames.isEmpty)
        flow.tick(now: start + .seconds(31))
        #expect(try Self.drain(frames).first?.header.flags == [.rst, .ack])
        #expect(flow.phase == .closed)
    }

    /// A guest whose ACK of the SYN-ACK is lost (its tap queue overflowing
    /// under its own flood, as in `LoadTests`) already counts the connection
    /// open: the SYN-ACK is sent again six times, 0.2 s to 12.6 s after the
    /// first, and the guest's retransmitted data completes the handshake. Only
    /// a guest silent past 22.6 s is reset.
    @Test func aHandshakeOutlastsSecondsOfLostGuestACKs() throws {
        let socket = MemorySocket()
        let (flow, frames, syn) = try makeFlow(socket: socket)
        let (guestISN, ports) = try syn.withView { ($0.sequenceNumber, ($0.sourcePort, $0.destinationPort)) }
        flow.hostConnected(now: start)
        let synAck = try #require(try Self.drain(frames).first).header
        var resent: [Double] = []
        for tenth in 1...225 {
            let now = start + .milliseconds(100 * tenth)
            flow.tick(now: now)
            for sent in try Self.drain(frames) {
                #expect(sent.header.flags == [.syn, .ack] && sent.header.sequenceNumber == synAck.sequenceNumber)
                resent.append(Double(tenth) / 10)
            }
        }
        #expect(resent == [0.2, 0.6, 1.4, 3.0, 6.2, 12.6])
        #expect(flow.stateName == "syn-received")
        let data = Array("echo 0\n".utf8)
        try Segment([.ack, .psh], seq: guestISN &+ 1, ack: synAck.sequenceNumber &+ 1, payload: data,
                    sourcePort: ports.0, destinationPort: ports.1).withView { flow.receive($0, now: start + .milliseconds(22_500)) }
        flow.flushAcknowledgment()
        #expect(flow.stateName == "established" && socket.written == data)

        let (silent, silentFrames, _) = try makeFlow(socket: MemorySocket())
        silent.hostConnected(now: start)
        for tenth in 1...225 { silent.tick(now: start + .milliseconds(100 * tenth)) }
        #expect(try Self.drain(silentFrames).allSatisfy { $0.header.flags == [.syn, .ack] })
        silent.tick(now: start + .milliseconds(22_600))
        #expect(try Self.drain(silentFrames).map(\.header.flags) == [[.rst, .ack]])
        #expect(silent.phase == .closed)
    }

    @Test func guestDataIsWrittenAndAcknowledgedOncePerBatch() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        let first = Array("GET / HTTP/1.1\r\n".utf8), second = Array("Host: x\r\n\r\n".utf8)
        try Segment([.ack, .psh], seq: seq, ack: ack, payload: first, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        try Segment([.ack, .psh], seq: seq &+ UInt32(first.count), ack: ack, payload: second,
                    sourcePort: ports.0, destinationPort: ports.1).withView { flow.receive($0, now: start) }
        #expect(socket.written.isEmpty && frames.isEmpty && flow.acknowledgmentPending, "gathered for one write")
        flow.flushAcknowledgment()
        #expect(socket.written == first + second)
        let sent = try Self.drain(frames)
        #expect(sent.count == 1)
        #expect(sent[0].header.acknowledgmentNumber == seq &+ UInt32(first.count + second.count))
    }

    @Test func gatheredDataIsWrittenEvenWhenAnAnswerCarriedTheACK() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        try Segment([.ack, .psh], seq: seq, ack: ack, payload: Array("question".utf8), sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        socket.incoming = Array("answer".utf8)
        flow.hostReadable(now: start)
        let sent = try Self.drain(frames)
        #expect(sent.first?.payload == Array("answer".utf8) && sent.first?.header.acknowledgmentNumber == seq &+ 8)
        #expect(!flow.acknowledgmentPending && flow.needsFlush, "the answer acknowledged the question, which still waits to be written")
        flow.flushAcknowledgment()
        #expect(socket.written == Array("question".utf8))
        #expect(!flow.needsFlush)
    }

    @Test func whatAFullHostSocketDoesNotTakeIsKeptAndTheWindowShrinks() throws {
        let socket = MemorySocket()
        socket.room = 50_000
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        socket.room = 10
        let payload = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        try Segment([.ack], seq: seq, ack: ack, payload: payload, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        flow.flushAcknowledgment()
        #expect(socket.written.count == 10)
        #expect(socket.watchingWritable)
        let acknowledged = try #require(try Self.drain(frames).last)
        #expect(acknowledged.header.acknowledgmentNumber == seq &+ 1000, "the guest need not send it again")
        let window = Int(acknowledged.header.window) << 7
        #expect(window < 50_000 - 1000 + 128, "the window does not grow while bytes wait: \(window)")
        socket.room = 100_000
        flow.hostWritable(now: start)
        #expect(socket.written == payload)
        #expect(!socket.watchingWritable)
        #expect(try Self.drain(frames).count == 1, "a window update")
    }

    @Test func bytesBeyondTheOfferedWindowAreNotTaken() throws {
        let socket = MemorySocket()
        socket.room = 2000
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        _ = frames
        let payload = [UInt8](repeating: 9, count: 3000)
        try Segment([.ack], seq: seq, ack: ack, payload: payload, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        flow.flushAcknowledgment()
        #expect(socket.written.count <= 2000)
        let acknowledged = try #require(try Self.drain(frames).last)
        #expect(acknowledged.header.acknowledgmentNumber &- seq <= 2000)
    }

    @Test func hostDataIsSegmentedByTheGuestMSSAndKeptUntilAcknowledged() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        socket.incoming = (0..<4000).map { UInt8(truncatingIfNeeded: $0) }
        flow.hostReadable(now: start)
        let sent = try Self.drain(frames)
        #expect(sent.map(\.payload.count) == [1460, 1460, 1080])
        #expect(sent.map(\.header.sequenceNumber) == [ack, ack &+ 1460, ack &+ 2920])
        #expect(sent.flatMap(\.payload) == socket.incoming)
        try Segment([.ack], seq: seq, ack: ack &+ 2920, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(socket.incoming.count == 4000 && flow.needsFlush, "acknowledged bytes wait for the end of the batch")
        flow.flushAcknowledgment()
        #expect(socket.incoming.count == 1080, "acknowledged bytes leave the socket's queue")
    }

    @Test func aPeekThatFoundNothingWaitsForReadabilityAndAShortOneForTheNextTurn() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        let before = socket.peeks
        socket.incoming = Array("answer".utf8)
        flow.hostReadable(now: start)
        #expect(try Self.drain(frames).map(\.payload) == [Array("answer".utf8)])
        #expect(flow.wantsTurn && socket.peeks == before + 1, "a short peek: the next look after the answer went out")
        flow.pump(now: start)
        #expect(!flow.wantsTurn && socket.peeks == before + 2 && frames.isEmpty, "that look found nothing")
        try Segment([.ack, .psh], seq: seq, ack: ack &+ 6, payload: Array("next".utf8), sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        flow.flushAcknowledgment()
        #expect(socket.peeks == before + 2, "no readiness since: no peek")
        #expect(socket.incoming.isEmpty && socket.written == Array("next".utf8))
        socket.incoming = Array("more".utf8)
        flow.hostReadable(now: start)
        let more = try Self.drain(frames)
        #expect(socket.peeks == before + 3 && more.last?.payload == Array("more".utf8))
    }

    @Test func aRewindPeeksAgainWithoutReadiness() throws {
        let socket = MemorySocket()
        let (flow, frames, _, ack, _) = try established(socket: socket)
        socket.incoming = [UInt8](repeating: 1, count: 100)
        flow.hostReadable(now: start)
        flow.pump(now: start)
        _ = try Self.drain(frames)
        flow.tick(now: start + .milliseconds(250))
        let again = try Self.drain(frames)
        #expect(socket.rewinds == 1 && again.first?.header.sequenceNumber == ack && again.first?.payload.count == 100)
    }

    @Test func aLostSegmentIsSentAgainAfterTheTimeout() throws {
        let socket = MemorySocket()
        let (flow, frames, _, ack, _) = try established(socket: socket)
        socket.incoming = [UInt8](repeating: 1, count: 3000)
        flow.hostReadable(now: start)
        _ = try Self.drain(frames)
        flow.tick(now: start + .milliseconds(100))
        #expect(frames.isEmpty)
        flow.tick(now: start + .milliseconds(250))
        let again = try Self.drain(frames)
        #expect(socket.rewinds == 1)
        #expect(again.first?.header.sequenceNumber == ack)
        #expect(again.flatMap(\.payload).count == 3000)
    }

    @Test func aBlockedGuestPortHoldsDataBackWithoutTimeouts() throws {
        let socket = MemorySocket()
        let (flow, frames, _, ack, _) = try established(socket: socket)
        let ports = flow.context.ports
        ports.insert(Self.link.port)
        let backlogged = { (value: Bool) in ports.update(Self.link.port) { $0.backlogged = value } }
        socket.incoming = [UInt8](repeating: 4, count: 3000)
        backlogged(true)
        flow.hostReadable(now: start)
        #expect(frames.isEmpty && flow.wantsTurn, "nothing is sent toward a guest that is not reading")
        backlogged(false)
        flow.pump(now: start)
        #expect(try Self.drain(frames).count == 3)
        backlogged(true)
        flow.tick(now: start + .seconds(1))
        #expect(frames.isEmpty && socket.rewinds == 0, "no timeout while the data may still wait in the proxy's queue")
        backlogged(false)
        flow.tick(now: start + .seconds(2))
        #expect(try Self.drain(frames).first?.header.sequenceNumber == ack)
    }

    @Test func threeDuplicateAcksRetransmitAtOnce() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        socket.incoming = [UInt8](repeating: 2, count: 5000)
        flow.hostReadable(now: start)
        _ = try Self.drain(frames)
        // The first segment arrived, the second was lost: one new ACK, then three duplicates.
        for _ in 0..<4 {
            try Segment([.ack], seq: seq, ack: ack &+ 1460, sourcePort: ports.0, destinationPort: ports.1)
                .withView { flow.receive($0, now: start) }
        }
        let resent = try Self.drain(frames)
        #expect(resent.first?.header.sequenceNumber == ack &+ 1460)
        #expect(socket.rewinds == 1)
    }

    @Test func theGuestWindowLimitsWhatIsInFlight() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        // A window of 3 << 10 bytes (the recorded SYN's scale 10).
        try Segment([.ack], seq: seq, ack: ack, window: 3, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        socket.incoming = [UInt8](repeating: 3, count: 10_000)
        flow.hostReadable(now: start)
        #expect(try Self.drain(frames).reduce(0) { $0 + $1.payload.count } == 3072)
        try Segment([.ack], seq: seq, ack: ack &+ 3072, window: 0, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(frames.isEmpty)
        flow.tick(now: start + .milliseconds(250))
        let probe = try #require(try Self.drain(frames).first)
        #expect(probe.payload.isEmpty && probe.header.sequenceNumber == ack &+ 3071, "a zero-window probe")
        try Segment([.ack], seq: seq, ack: ack &+ 3072, window: 100, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(try Self.drain(frames).reduce(0) { $0 + $1.payload.count } == 10_000 - 3072)
    }

    @Test func finBothWaysGuestFirstEndsWithoutTimeWait() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        try Segment([.fin, .ack], seq: seq, ack: ack, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(socket.shutDown)
        #expect(try Self.drain(frames).last?.header.acknowledgmentNumber == seq &+ 1)
        #expect(flow.stateName == "close-wait")
        socket.incoming = Array("bye".utf8)
        socket.endOfStream = true
        flow.hostReadable(now: start)
        #expect(try Self.drain(frames).map(\.header.flags) == [[.ack, .psh]])
        flow.pump(now: start)
        #expect(try Self.drain(frames).map(\.header.flags) == [[.fin, .ack]], "the end, found on the next turn")
        try Segment([.ack], seq: seq &+ 1, ack: ack &+ 4, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(flow.phase == .closed)
        #expect(socket.closed == false, "a clean close, not a reset")
    }

    @Test func finBothWaysHostFirstKeepsTimeWait() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        socket.endOfStream = true
        flow.hostReadable(now: start)
        #expect(try Self.drain(frames).map(\.header.flags) == [[.fin, .ack]])
        #expect(flow.stateName == "fin-wait")
        try Segment([.fin, .ack], seq: seq, ack: ack &+ 1, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start) }
        #expect(flow.phase == .timeWait)
        _ = try Self.drain(frames)
        try Segment([.fin, .ack], seq: seq, ack: ack &+ 1, sourcePort: ports.0, destinationPort: ports.1)
            .withView { flow.receive($0, now: start + .seconds(1)) }
        #expect(try Self.drain(frames).first?.header.acknowledgmentNumber == seq &+ 1, "a repeated FIN is acknowledged again")
        flow.tick(now: start + .seconds(6))
        #expect(flow.phase == .closed)
    }

    @Test func resetsAreCheckedAgainstRFC5961() throws {
        let socket = MemorySocket()
        let (flow, frames, seq, ack, ports) = try established(socket: socket)
        try Segment([.rst], seq: seq &+ 100, sourcePort: ports.0, destinationPort: ports.1).withView { flow.receive($0, now: start) }
        #expect(flow.phase == .open)
        #expect(try Self.drain(frames).first?.header.flags == [.ack], "an RST inside the window but not exact gets a challenge ACK")
        try Segment([.rst], seq: seq, sourcePort: ports.0, destinationPort: ports.1).withView { flow.receive($0, now: start) }
        #expect(flow.phase == .closed)
        #expect(socket.closed == true, "the host sees a reset")
        _ = ack
    }

    @Test func aHostResetResetsTheGuest() throws {
        let socket = MemorySocket()
        let (flow, frames, _, _, _) = try established(socket: socket)
        socket.failure = 104
        flow.hostReadable(now: start)
        #expect(try Self.drain(frames).first?.header.flags == [.rst, .ack])
        #expect(flow.phase == .closed)
    }

    @Test func portForwardOpensTowardTheGuest() throws {
        let frames = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: 1500)
        let context = TCPContext(settings: TCPSettings(mtu: 1500), frames: frames)
        let socket = MemorySocket()
        socket.incoming = Array("SSH-2.0-client\r\n".utf8)
        let key = FlowKey(guest: .v4(Self.guest), guestPort: 22, remote: .v4(Self.remote), remotePort: 40000)
        let flow = TCPFlow(connectingTo: key, link: Self.link, socket: socket, context: context, now: start)
        let syn = try #require(try Self.drain(frames).first)
        #expect(syn.header.flags == [.syn])
        #expect(syn.header.destinationPort == 22 && syn.header.options.windowScale == 7)
        try Segment([.syn, .ack], seq: 5000, ack: syn.header.sequenceNumber &+ 1, options: TCPOptions(maximumSegmentSize: 1460, windowScale: 7),
                    sourcePort: 22, destinationPort: 40000).withView { flow.receive($0, now: start) }
        let sent = try Self.drain(frames)
        #expect(sent.first?.header.flags == [.ack] && sent.first?.header.acknowledgmentNumber == 5001)
        #expect(sent.dropFirst().flatMap(\.payload) == Array("SSH-2.0-client\r\n".utf8))
        #expect(flow.stateName == "established")

        let refused = TCPFlow(connectingTo: key, link: Self.link, socket: MemorySocket(), context: context, now: start)
        let refusedSYN = try #require(try Self.drain(frames).first)
        let refusedSocket = refused.socket as! MemorySocket
        try Segment([.rst, .ack], seq: 0, ack: refusedSYN.header.sequenceNumber &+ 1, sourcePort: 22, destinationPort: 40000)
            .withView { refused.receive($0, now: start) }
        #expect(refused.phase == .closed && refusedSocket.closed == true)
    }

    /// A turn sends 64 segments, but no more than `bytesPerTurn`: at MTU
    /// 1500 that is 64 segments of 1,460 bytes; a jumbo guest's 65,480-byte
    /// segments would make 4 MB, so its turn is four of them.
    @Test func aTurnIsBoundedInSegmentsAndInBytes() throws {
        let socket = MemorySocket()
        let (flow, frames, _, _, _) = try established(socket: socket)
        socket.incoming = [UInt8](repeating: 0x61, count: 8 << 20)
        flow.hostReadable(now: start)
        #expect(try Self.drain(frames).map(\.payload.count) == Array(repeating: 1460, count: 64))
        #expect(flow.wantsTurn)

        let jumbo = MemorySocket()
        let frames65520 = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: 65520)
        let context = TCPContext(settings: TCPSettings(mtu: 65520), frames: frames65520)
        let key = FlowKey(guest: .v4(Self.guest), guestPort: 40000, remote: .v4(Self.remote), remotePort: 8080)
        let flow65520 = try Segment([.syn], seq: 1000, options: TCPOptions(maximumSegmentSize: 65480, windowScale: 7)).withView {
            TCPFlow(guestSYN: $0, key: key, link: Self.link, socket: jumbo, context: context, now: start)
        }
        flow65520.hostConnected(now: start)
        let synAck = try #require(try Self.drain(frames65520).first)
        try Segment([.ack], seq: 1001, ack: synAck.header.sequenceNumber &+ 1, window: 65535)
            .withView { flow65520.receive($0, now: start) }
        jumbo.incoming = [UInt8](repeating: 0x62, count: 8 << 20)
        flow65520.hostReadable(now: start)
        #expect(try Self.drain(frames65520).map(\.payload.count) == Array(repeating: 65480, count: 4))
        #expect(flow65520.wantsTurn)
    }

    /// RFC 6528: a 4 µs clock plus a keyed hash of the four-tuple. A port
    /// forward that reuses a four-tuple a second later starts 250,000 above
    /// the flow before it (so a guest in TIME-WAIT takes its SYN); another
    /// four-tuple, or another proxy's key, starts elsewhere.
    @Test func initialSequenceNumbersFollowRFC6528() throws {
        let frames = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: 1500)
        let context = TCPContext(settings: TCPSettings(mtu: 1500), frames: frames)
        let key = FlowKey(guest: .v4(Self.guest), guestPort: 8080, remote: .v4(Self.remote), remotePort: 40000)
        let other = FlowKey(guest: .v4(Self.guest), guestPort: 8080, remote: .v4(Self.remote), remotePort: 40001)
        func synSequence(_ key: FlowKey, at now: ContinuousClock.Instant, _ context: TCPContext) throws -> UInt32 {
            _ = TCPFlow(connectingTo: key, link: Self.link, socket: MemorySocket(), context: context, now: now)
            return try #require(try Self.drain(context.frames).first?.header.sequenceNumber)
        }
        let first = try synSequence(key, at: start, context)
        #expect(try synSequence(key, at: start + .seconds(1), context) &- first == 250_000)
        #expect(try synSequence(key, at: start + .microseconds(4_000), context) &- first == 1_000)
        #expect(try synSequence(other, at: start + .seconds(1), context) &- first != 250_000)
        let elsewhere = TCPContext(settings: TCPSettings(mtu: 1500), frames: frames)
        #expect(try synSequence(key, at: start, elsewhere) != first)
    }
}
