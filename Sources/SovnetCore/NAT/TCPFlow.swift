// One NATed TCP connection, from the guest's side. The proxy plays the remote
// end of the guest's connection (RFC 793/9293) and relays the byte stream to
// a host socket (`FlowSocket`) without buffering it:
//
// - guest → host: in-order segments are gathered over a batch of frames and
//   written to the socket with one call, then acknowledged together. The window offered to the guest is the room left in the
//   socket's send buffer, so a slow host peer slows the guest. The room is an
//   estimate: what a write does not take is kept (`unwritten`) and written
//   when the socket has room, and the window shrinks by it meanwhile. A guest
//   cannot send beyond the window it was offered, so this is bounded by the
//   largest window (`TCPSettings.maximumWindow`).
// - host → guest: bytes are peeked from the socket's receive queue, cut into
//   segments of the guest's MSS and sent as far as the guest's window allows;
//   they leave the queue only when the guest acknowledges them. On an
//   offloading link (`GuestLink.offload`) many segments go as one
//   superframe, left for the guest's kernel to take as the segments it
//   stands for. A timeout or
//   three duplicate ACKs rewind the peek and send again (go-back-N). A full
//   guest window stops the reading, so a slow guest slows the host peer.
//   The socket reports new bytes edge-triggered (`hostReadable`), so a peek
//   that found nothing is not repeated until it does; a peek that came back
//   short leaves the next look for the next turn, after what it read has gone
//   to the guest. Bytes the guest acknowledges leave the queue when the batch
//   ends, after the batch's guest data was written: the round trip's write
//   comes first.
//
// Out-of-order segments from the guest are not kept: a duplicate ACK asks for
// them again, which on a virtual link costs little. Handshakes: a guest SYN is
// answered only once the host connect succeeded (`hostConnected`), with the
// MSS of the link and a window scale if the guest offered one; a port forward
// sends the SYN itself (`init(connectingTo:)`). FIN and RST are relayed both
// ways; the side that closes first keeps a short TIME-WAIT. RSTs are checked
// against RFC 5961 (exact sequence number, challenge ACK otherwise).
import SovnetWire

/// A TCP flow between a guest and a host socket.
public final class TCPFlow {
    public enum Phase: Sendable, Equatable {
        /// The guest's SYN arrived; the host connect is under way.
        case connecting
        /// A port forward sent its SYN to the guest.
        case synSent
        /// The SYN-ACK went to the guest; its ACK is awaited.
        case synReceived
        /// Data may flow (in one or both directions).
        case open
        /// Both sides closed; retransmitted FINs are still acknowledged.
        case timeWait
        case closed
    }

    public let key: FlowKey
    /// Where the guest is; it moves when the guest reconnects on another port.
    public var link: GuestLink
    public let socket: FlowSocket
    let context: TCPContext
    public private(set) var phase: Phase
    /// When `tick` must run next.
    public private(set) var deadline: ContinuousClock.Instant?
    /// The flow used its turn with more to send: call `pump` again soon.
    public private(set) var wantsTurn = false
    /// Why the flow ended, when it did not end with FINs both ways.
    public private(set) var endReason: String?
    /// Guest data was taken but not acknowledged yet.
    public private(set) var acknowledgmentPending = false
    /// Guest data waits to be written or acknowledged, or acknowledged host
    /// bytes to leave the socket: call `flushAcknowledgment` once the batch
    /// of frames is done.
    public var needsFlush: Bool { acknowledgmentPending || !gathered.isEmpty || acknowledgedInQueue > 0 }

    // Toward the guest.
    private let initialSequence: UInt32
    private var unacknowledged: UInt32
    /// The oldest sequence number the guest has not acknowledged: where an
    /// RST that the guest must take (RFC 5961 §3.2) begins.
    public var oldestUnacknowledged: UInt32 { unacknowledged }
    private var nextToSend: UInt32
    /// The highest sequence number sent so far (a rewind moves `nextToSend` back).
    private var highestSent: UInt32
    private var finSequence: UInt32?
    private var guestWindow = 0
    private var guestShift: UInt8 = 0
    private var ownShift: UInt8 = 0
    private var segmentSize: Int
    private var closedFirst = false
    private var retransmissionTimeout: Duration
    private var retries = 0
    private var duplicateAcknowledgments = 0
    /// The last peek found no new bytes and the socket has not reported
    /// readability since: another peek would find none.
    private var hostDrained = false
    /// Bytes the guest acknowledged that are still in the socket's receive
    /// queue, discarded by `flushAcknowledgment` (or before a rewind).
    private var acknowledgedInQueue = 0

    // From the guest.
    private var receiveNext: UInt32 = 0
    private var guestFinished = false
    /// Guest bytes acknowledged but not yet taken by the host socket.
    private var unwritten: [UInt8] = []
    /// Guest bytes of this batch, written with one call by `flushAcknowledgment`.
    private var gathered: [UInt8] = []
    /// The most capacity `gathered` keeps between batches.
    private static let gatheredCapacity = 256 * 1024
    /// The right edge of the window last offered to the guest.
    private var windowEdge: UInt32 = 0
    /// A zero window was offered; the socket is watched for room to reopen it.
    private var windowClosed = false
    private var reopening = false

    /// What both kinds of flow start with.
    private init(key: FlowKey, link: GuestLink, socket: FlowSocket, context: TCPContext, phase: Phase,
                 now: ContinuousClock.Instant) {
        self.key = key
        self.link = link
        self.socket = socket
        self.context = context
        self.phase = phase
        initialSequence = context.initialSequenceNumber(for: key, now: now)
        unacknowledged = initialSequence
        nextToSend = initialSequence
        highestSent = initialSequence
        retransmissionTimeout = context.settings.initialRetransmissionTimeout
        segmentSize = context.settings.maximumSegmentSize(ipv6: key.guest.isIPv6)
    }

    /// A flow for a guest's SYN; the driver has started connecting `socket`.
    public convenience init(guestSYN segment: TCPView, key: FlowKey, link: GuestLink, socket: FlowSocket,
                            context: TCPContext, now: ContinuousClock.Instant) {
        self.init(key: key, link: link, socket: socket, context: context, phase: .connecting, now: now)
        adoptOptions(of: segment)
        guestWindow = Int(segment.window)
        deadline = now + context.settings.connectTimeout
        count(fromGuest: segment)
    }

    /// A flow the host opened (a port forward): sends a SYN to the guest.
    public convenience init(connectingTo key: FlowKey, link: GuestLink, socket: FlowSocket,
                            context: TCPContext, now: ContinuousClock.Instant) {
        self.init(key: key, link: link, socket: socket, context: context, phase: .synSent, now: now)
        nextToSend = initialSequence &+ 1
        highestSent = nextToSend
        sendSYN(acknowledging: false)
        deadline = now + retransmissionTimeout
    }

    /// Takes the MSS and window scale of the guest's SYN, and its sequence number.
    private func adoptOptions(of segment: TCPView) {
        let options = (try? segment.options()) ?? TCPOptions()
        segmentSize = min(Int(options.maximumSegmentSize ?? 536), context.settings.maximumSegmentSize(ipv6: key.guest.isIPv6))
        if let shift = options.windowScale {
            guestShift = min(shift, 14)
            ownShift = context.settings.windowShift
        }
        receiveNext = segment.sequenceNumber &+ 1
        windowEdge = receiveNext
    }

    /// The state's name in RFC 9293's terms, for `/stats`.
    public var stateName: String {
        switch phase {
        case .connecting: return "connecting"
        case .synSent: return "syn-sent"
        case .synReceived: return "syn-received"
        case .timeWait: return "time-wait"
        case .closed: return "closed"
        case .open:
            switch (guestFinished, finSequence != nil) {
            case (false, false): return "established"
            case (true, false): return "close-wait"
            case (false, true): return "fin-wait"
            case (true, true): return "last-ack"
            }
        }
    }

    // MARK: Events from the driver

    /// The host connect succeeded: the guest gets its SYN-ACK.
    public func hostConnected(now: ContinuousClock.Instant) {
        guard phase == .connecting else { return }
        phase = .synReceived
        nextToSend = initialSequence &+ 1
        highestSent = nextToSend
        sendSYN(acknowledging: true)
        deadline = now + retransmissionTimeout
    }

    /// The host connect failed with `error` (an errno value): the guest gets an
    /// RST, or an ICMP unreachable when the host said the destination is.
    public func hostConnectFailed(_ error: Int32) {
        guard phase == .connecting else { return }
        if let reason = Self.unreachableReason(error) {
            sendUnreachable(reason)
        } else {
            emit(flags: [.rst, .ack], sequence: 0)
        }
        socket.close(reset: false)
        phase = .closed
        deadline = nil
    }

    /// The ICMP unreachable a connect error is told as, or nil when an RST says it better.
    static func unreachableReason(_ error: Int32) -> GuestFrames.Unreachable? {
        switch error {
        case 113: .host        // EHOSTUNREACH
        case 101: .network     // ENETUNREACH
        case 1, 13: .administrativelyProhibited  // EPERM, EACCES
        default: nil
        }
    }

    /// A segment from the guest for this flow (checksum already verified).
    public func receive(_ segment: TCPView, now: ContinuousClock.Instant) {
        count(fromGuest: segment)
        let flags = segment.flags
        switch phase {
        case .closed:
            return
        case .connecting:
            if flags.contains(.rst) { abort(resetGuest: false, because: "guest reset while connecting") }
            return
        case .synSent:
            synSentSegment(segment, now: now)
            return
        case .timeWait:
            if flags.contains(.fin), !flags.contains(.rst) { sendAcknowledgment() }
            return
        case .synReceived, .open:
            break
        }
        let sequence = segment.sequenceNumber
        if flags.contains(.rst) {
            if sequence == receiveNext {
                abort(resetGuest: false, because: "guest reset")
            } else if isInReceiveWindow(sequence) {
                sendAcknowledgment()
            }
            return
        }
        if flags.contains(.syn) {
            if phase == .synReceived, sequence &+ 1 == receiveNext {
                sendSYN(acknowledging: true)
            } else {
                sendAcknowledgment()
            }
            return
        }
        guard flags.contains(.ack) else { return }
        let ack = segment.acknowledgmentNumber
        if phase == .synReceived {
            guard ack == initialSequence &+ 1 else {
                emit(flags: [.rst], sequence: ack, acknowledging: false)
                return
            }
            phase = .open
            unacknowledged = ack
            retries = 0
            retransmissionTimeout = context.settings.initialRetransmissionTimeout
            deadline = nil
            guestWindow = Int(segment.window) << guestShift
        }
        let bare = segment.payload.isEmpty && !flags.contains(.fin)
        guard acknowledge(ack, window: segment.window, bare: bare, now: now) else { return }
        if !bare {
            take(segment, now: now)
        } else if segment.sequenceNumber != receiveNext {
            // A window probe or keep-alive: the answer carries the window (RFC 9293 §3.10.7.4).
            sendAcknowledgment()
        }
        finishIfDone(now: now)
        pump(now: now)
    }

    /// The host socket has bytes (or EOF, or an error) to read.
    public func hostReadable(now: ContinuousClock.Instant) {
        hostDrained = false
        pump(now: now)
    }

    /// The host socket has room again, after a short write or a zero window:
    /// what waits is written, and the guest hears the window is open.
    public func hostWritable(now: ContinuousClock.Instant) {
        guard phase == .open else { return }
        if !unwritten.isEmpty {
            guard let taken = unwritten.withUnsafeBytes({ socket.write($0) }) else {
                abort(resetGuest: true, because: "host write failed")
                return
            }
            unwritten.removeFirst(taken)
            guard unwritten.isEmpty else { return }
            if guestFinished { socket.shutdownWrite() }
        }
        socket.wantWritable(false)
        windowClosed = false
        // Sent without asking to be woken again: if the estimate still says 0,
        // the guest's window probes find out when it opens.
        reopening = true
        sendAcknowledgment()
        reopening = false
    }

    /// Writes the guest data gathered in this batch, discards the host bytes
    /// the guest acknowledged, and sends the ACK owed. Call it before the
    /// frames of the batch are released.
    public func flushAcknowledgment() {
        writeGathered()
        discardAcknowledged()
        if acknowledgmentPending, phase != .closed { sendAcknowledgment() }
    }

    private func discardAcknowledged() {
        guard acknowledgedInQueue > 0 else { return }
        if phase != .closed { socket.consume(acknowledgedInQueue) }
        acknowledgedInQueue = 0
    }

    /// One write for the batch's guest data; what the socket did not take is kept.
    private func writeGathered() {
        guard !gathered.isEmpty else { return }
        defer { gathered.removeAll(keepingCapacity: gathered.capacity <= Self.gatheredCapacity) }
        guard phase == .open else { return }
        guard let taken = gathered.withUnsafeBytes({ socket.write($0) }) else {
            abort(resetGuest: true, because: "host write failed")
            return
        }
        guard taken < gathered.count else { return }
        unwritten.append(contentsOf: gathered[taken...])
        socket.wantWritable(true)
    }

    /// Runs the flow's timer if it is due.
    public func tick(now: ContinuousClock.Instant) {
        guard let due = deadline, now >= due else { return }
        deadline = nil
        switch phase {
        case .connecting:
            hostConnectFailed(110)  // ETIMEDOUT
        case .synSent, .synReceived:
            retries += 1
            guard retries <= context.settings.maximumHandshakeRetransmissions else {
                abort(resetGuest: phase == .synReceived, because: "handshake timed out")
                return
            }
            sendSYN(acknowledging: phase == .synReceived)
            backOff(now: now)
        case .open:
            if context.ports.isBacklogged(link.port) {
                // What is unacknowledged may still wait in the proxy's own queue
                // for the guest: no timeout runs until the guest takes it.
                deadline = now + retransmissionTimeout
            } else if TCPSequence.less(unacknowledged, highestSent) {
                retransmit(now: now)
            } else if guestWindow == 0 {
                // Zero-window probe: an old sequence number makes the guest answer with its window.
                emit(flags: [.ack], sequence: unacknowledged &- 1)
                backOff(now: now)
            }
        case .timeWait:
            phase = .closed
        case .closed:
            break
        }
    }

    /// Sends as much host data as the guest's window and this turn allow;
    /// nothing while the guest's port is held back (it then wants a turn).
    public func pump(now: ContinuousClock.Instant) {
        wantsTurn = false
        guard phase == .open, finSequence == nil || nextToSend != finSequence! &+ 1 else { return }
        guard !context.isHeldBack(link.port) else {
            wantsTurn = true
            return
        }
        let budget = context.settings.turnBudget(segmentSize: segmentSize, piece: piece)
        var sent = 0
        while sent < budget {
            let room = guestWindow - TCPSequence.distance(from: unacknowledged, to: nextToSend)
            guard room > 0 else {
                if guestWindow == 0, deadline == nil { deadline = now + retransmissionTimeout }
                break
            }
            if let fin = finSequence, nextToSend == fin {
                sendFIN(now: now)
                break
            }
            guard !hostDrained else { return }
            let want = min(room, budget - sent, context.scratch.count)
            switch socket.peek(into: UnsafeMutableRawBufferPointer(rebasing: context.scratch[0..<want])) {
            case .data(let count):
                sendData(UnsafeRawBufferPointer(rebasing: context.scratch[0..<count]), now: now)
                sent += count
                if count < want || context.isHeldBack(link.port) {
                    wantsTurn = true
                    return
                }
            case .wouldBlock:
                hostDrained = true
                return
            case .outOfReach:
                return
            case .endOfStream:
                finSequence = nextToSend
                sendFIN(now: now)
                return
            case .failed:
                abort(resetGuest: true, because: "host read failed")
                return
            }
        }
        wantsTurn = sent >= budget
    }

    // MARK: Receiving

    /// Handles the ACK field; false when the segment must be dropped.
    private func acknowledge(_ ack: UInt32, window: UInt16, bare: Bool, now: ContinuousClock.Instant) -> Bool {
        if TCPSequence.less(highestSent, ack) {
            sendAcknowledgment()
            return false
        }
        let newWindow = Int(window) << guestShift
        if TCPSequence.less(unacknowledged, ack) {
            let dataEnd = finSequence.map { TCPSequence.less($0, ack) ? $0 : ack } ?? ack
            let acknowledgedBytes = TCPSequence.distance(from: unacknowledged, to: dataEnd)
            acknowledgedInQueue += acknowledgedBytes
            unacknowledged = ack
            if TCPSequence.less(nextToSend, ack) { nextToSend = ack }
            retries = 0
            duplicateAcknowledgments = 0
            retransmissionTimeout = context.settings.initialRetransmissionTimeout
            deadline = ack == highestSent ? nil : now + retransmissionTimeout
        } else if ack == unacknowledged, bare, unacknowledged != highestSent, newWindow == guestWindow {
            duplicateAcknowledgments += 1
            if duplicateAcknowledgments == 3 { retransmit(now: now) }
        }
        guestWindow = newWindow
        return true
    }

    /// Takes data and FIN from the guest: written to the host socket in order.
    private func take(_ segment: TCPView, now: ContinuousClock.Instant) {
        var payload = segment.payload
        var sequence = segment.sequenceNumber
        let fin = segment.flags.contains(.fin)
        if guestFinished {
            if fin { sendAcknowledgment() }
            return
        }
        if sequence != receiveNext {
            let end = sequence &+ UInt32(truncatingIfNeeded: payload.count)
            guard TCPSequence.less(sequence, receiveNext), TCPSequence.less(receiveNext, end) else {
                sendAcknowledgment()
                return
            }
            payload = UnsafeRawBufferPointer(rebasing: payload[TCPSequence.distance(from: sequence, to: receiveNext)...])
            sequence = receiveNext
        }
        // Bytes beyond the window offered are not taken (RFC 9293 §3.10.7.4).
        let room = max(0, Int(Int32(bitPattern: windowEdge &- receiveNext)))
        let trimmed = payload.count > room
        if trimmed { payload = UnsafeRawBufferPointer(rebasing: payload[..<room]) }
        if !payload.isEmpty {
            if unwritten.isEmpty {
                gathered.append(contentsOf: payload)
            } else {
                unwritten.append(contentsOf: payload)
            }
            receiveNext = receiveNext &+ UInt32(payload.count)
            acknowledgmentPending = true
        }
        if fin, !trimmed {
            receiveNext = receiveNext &+ 1
            guestFinished = true
            writeGathered()
            if unwritten.isEmpty, phase == .open { socket.shutdownWrite() }
            if phase == .open { sendAcknowledgment() }
        }
    }

    private func isInReceiveWindow(_ sequence: UInt32) -> Bool {
        let window = max(1, advertisedWindow().bytes)
        return TCPSequence.lessOrEqual(receiveNext, sequence)
            && TCPSequence.less(sequence, receiveNext &+ UInt32(truncatingIfNeeded: window))
    }

    private func synSentSegment(_ segment: TCPView, now: ContinuousClock.Instant) {
        let flags = segment.flags
        let ack = segment.acknowledgmentNumber
        guard flags.contains(.ack), ack == initialSequence &+ 1 else {
            if flags.contains(.ack), !flags.contains(.rst) {
                emit(flags: [.rst], sequence: ack, acknowledging: false)
            }
            return
        }
        if flags.contains(.rst) {
            socket.close(reset: true)
            phase = .closed
            deadline = nil
            return
        }
        guard flags.contains(.syn) else { return }
        adoptOptions(of: segment)
        unacknowledged = ack
        guestWindow = Int(segment.window)
        phase = .open
        retries = 0
        deadline = nil
        sendAcknowledgment()
        pump(now: now)
    }

    // MARK: Sending

    /// The payload of one frame to the guest: a segment, or on an offloading
    /// link a superframe of whole segments.
    private var piece: Int {
        let superframe = TCPSettings.superframePayload(ipv6: key.guest.isIPv6)
        return link.offload ? max(segmentSize, superframe / segmentSize * segmentSize) : segmentSize
    }

    /// Cuts `bytes` into frames of `piece` bytes and sends them.
    private func sendData(_ bytes: UnsafeRawBufferPointer, now: ContinuousClock.Instant) {
        var offset = 0
        let piece = piece
        while offset < bytes.count {
            let length = min(piece, bytes.count - offset)
            let last = offset + length == bytes.count
            emit(flags: last ? [.ack, .psh] : [.ack], sequence: nextToSend,
                 payload: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length]))
            nextToSend = nextToSend &+ UInt32(length)
            offset += length
        }
        if TCPSequence.less(highestSent, nextToSend) { highestSent = nextToSend }
        if deadline == nil { deadline = now + retransmissionTimeout }
    }

    private func sendFIN(now: ContinuousClock.Instant) {
        emit(flags: [.fin, .ack], sequence: nextToSend)
        nextToSend = nextToSend &+ 1
        if TCPSequence.less(highestSent, nextToSend) { highestSent = nextToSend }
        if !guestFinished { closedFirst = true }
        if deadline == nil { deadline = now + retransmissionTimeout }
    }

    /// The guest came back on a new port (a forwarder that reconnected):
    /// what went to the old one is sent again, and an ACK probe with an old
    /// sequence number makes the guest state its window, or reset a
    /// connection it no longer knows.
    public func resume(now: ContinuousClock.Instant) {
        guard phase == .open else { return }
        emit(flags: [.ack], sequence: unacknowledged &- 1)
        if TCPSequence.less(unacknowledged, highestSent) {
            retries = 0
            retransmit(now: now)
        } else {
            wantsTurn = true
        }
    }

    /// Go-back-N: everything unacknowledged is sent again.
    private func retransmit(now: ContinuousClock.Instant) {
        retries += 1
        guard retries <= context.settings.maximumRetransmissions else {
            abort(resetGuest: true, because: "retransmissions exhausted")
            return
        }
        context.retransmissions += 1
        discardAcknowledged()
        socket.rewind()
        hostDrained = false
        nextToSend = unacknowledged
        duplicateAcknowledgments = 0
        deadline = nil
        pump(now: now)
        backOff(now: now)
    }

    private func backOff(now: ContinuousClock.Instant) {
        retransmissionTimeout = min(retransmissionTimeout * 2, context.settings.maximumRetransmissionTimeout)
        deadline = now + retransmissionTimeout
    }

    private func sendSYN(acknowledging: Bool) {
        var options = TCPOptions(maximumSegmentSize: UInt16(clamping: context.settings.maximumSegmentSize(ipv6: key.guest.isIPv6)))
        if !acknowledging {
            options.windowScale = context.settings.windowShift
        } else if ownShift > 0 {
            options.windowScale = ownShift
        }
        emit(flags: acknowledging ? [.syn, .ack] : [.syn], sequence: initialSequence,
             acknowledging: acknowledging, options: options)
    }

    private func sendAcknowledgment() {
        emit(flags: [.ack], sequence: nextToSend)
    }

    private func sendUnreachable(_ reason: GuestFrames.Unreachable) {
        // The ICMP error quotes the guest's SYN: its IP and TCP headers.
        var quoted: [UInt8] = []
        switch (key.guest, key.remote) {
        case (.v4(let guest), .v4(let remote)):
            IPv4Header(source: guest, destination: remote, protocol: .tcp, payloadLength: 20).emit(into: &quoted)
        default:
            IPv6Header(source: key.guest.asIPv6, destination: key.remote.asIPv6, nextHeader: .tcp, payloadLength: 20)
                .emit(into: &quoted)
        }
        TCPHeader(sourcePort: key.guestPort, destinationPort: key.remotePort, sequenceNumber: receiveNext &- 1,
                  flags: [.syn], window: 0).emit(payload: [], source: key.guest, destination: key.remote, into: &quoted)
        quoted.withUnsafeBytes { body in
            context.frames.appendUnreachable(link, source: key.remote, destination: key.guest, reason, quoting: body)
        }
    }

    /// Sends one segment to the guest, acknowledging everything taken so far.
    private func emit(flags: TCPFlags, sequence: UInt32, acknowledging: Bool = true,
                      payload: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                      options: TCPOptions = TCPOptions()) {
        let window = flags.contains(.syn) ? min(65535, advertisedWindow().bytes) : Int(advertisedWindow().field)
        let header = TCPHeader(sourcePort: key.remotePort, destinationPort: key.guestPort, sequenceNumber: sequence,
                               acknowledgmentNumber: acknowledging ? receiveNext : 0, flags: flags,
                               window: UInt16(clamping: window), options: options)
        context.frames.appendTCP(link, source: key.remote, destination: key.guest, header: header, payload: payload,
                                 segmentSize: segmentSize)
        if acknowledging {
            let edge = receiveNext &+ UInt32(flags.contains(.syn) ? window : window << Int(ownShift))
            if TCPSequence.less(windowEdge, edge) { windowEdge = edge }
            if window == 0, phase == .open, !guestFinished, !windowClosed, !reopening {
                windowClosed = true
                socket.wantWritable(true)
            }
        }
        context.counters.packetsToGuest += 1
        context.counters.bytesToGuest += payload.count
        if acknowledging { acknowledgmentPending = false }
    }

    /// The window offered to the guest: the room in the host socket's send
    /// buffer less what waits to be written, as the header field (scaled) and
    /// in bytes. The right edge it gives never moves left (RFC 9293 §3.8.6):
    /// a smaller room only stops the edge from advancing.
    private func advertisedWindow() -> (field: UInt16, bytes: Int) {
        let room = min(socket.writeSpace - unwritten.count - gathered.count, context.settings.maximumWindow, 65535 << Int(ownShift))
        let promised = phase == .open ? max(0, Int(Int32(bitPattern: windowEdge &- receiveNext))) : 0
        let space = max(0, room, promised)
        let field = UInt16(space >> Int(ownShift))
        return (field, Int(field) << Int(ownShift))
    }

    // MARK: Ending

    private func finishIfDone(now: ContinuousClock.Instant) {
        guard phase == .open, guestFinished, let fin = finSequence, TCPSequence.less(fin, unacknowledged) else { return }
        socket.close(reset: false)
        if closedFirst {
            phase = .timeWait
            deadline = now + context.settings.timeWait
        } else {
            phase = .closed
            deadline = nil
        }
    }

    /// Ends the flow at once: an RST to the host, and to the guest if asked.
    public func abort(resetGuest: Bool, because reason: String) {
        guard phase != .closed else { return }
        endReason = reason
        if resetGuest, phase != .timeWait { emit(flags: [.rst, .ack], sequence: nextToSend) }
        if phase != .timeWait { socket.close(reset: true) }
        phase = .closed
        deadline = nil
    }

    private func count(fromGuest segment: TCPView) {
        context.counters.packetsFromGuest += 1
        context.counters.bytesFromGuest += segment.payload.count
    }
}
