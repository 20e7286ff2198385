import SovnetWire

/// Settings of the TCP the NAT speaks toward guests.
public struct TCPSettings: Sendable {
    /// The MSS offered to IPv4 guests: the link MTU less 40 bytes of headers.
    public var maximumSegmentSize: Int
    /// The window scale offered to guests that offer one (RFC 7323).
    public var windowShift: UInt8 = 7
    /// The largest window offered to a guest: also the most guest data a flow
    /// keeps when its host socket is slower than the estimate of its room.
    public var maximumWindow = 4 << 20
    /// Retransmission timeout: the first and the largest.
    public var initialRetransmissionTimeout: Duration = .milliseconds(200)
    public var maximumRetransmissionTimeout: Duration = .seconds(10)
    /// Retransmissions of the same data before the flow is reset.
    public var maximumRetransmissions = 10
    /// Retransmissions of a SYN or SYN-ACK before the handshake is given up:
    /// Linux's `tcp_syn_retries`. With the timeouts above the last goes out
    /// 12.6 s after the first and the flow ends 10 s later, so a guest whose
    /// ACKs are lost for seconds (its own queue overflowing) keeps its
    /// connection; its retransmissions complete the handshake.
    public var maximumHandshakeRetransmissions = 6
    /// How long a host connect may take before the guest gets an RST.
    public var connectTimeout: Duration = .seconds(30)
    /// How long a closed flow keeps answering retransmitted FINs.
    public var timeWait: Duration = .seconds(5)
    /// Most segments' worth of bytes one flow sends in one go before others get their turn.
    public var framesPerTurn = 64
    /// Most bytes one flow sends in one turn, whatever its segments' size:
    /// at a jumbo MTU, 64 segments would be 4 MB a turn, more than the
    /// caches and the guest connection's socket buffer hold. At least 64 KiB.
    public var bytesPerTurn = 256 * 1024

    public init(mtu: Int) {
        maximumSegmentSize = max(536, mtu - 40)
    }

    /// The bytes of one turn of a flow whose frames carry `piece` bytes each:
    /// `framesPerTurn` segments of `segmentSize`, but no more than
    /// `bytesPerTurn` in whole frames (at least one).
    func turnBudget(segmentSize: Int, piece: Int) -> Int {
        min(framesPerTurn * segmentSize, max(piece, bytesPerTurn / piece * piece))
    }

    /// The MSS for a flow of either family: IPv6's header is 20 bytes longer.
    public func maximumSegmentSize(ipv6: Bool) -> Int {
        ipv6 ? maximumSegmentSize - 20 : maximumSegmentSize
    }

    /// The most payload one superframe toward an offloading guest carries:
    /// with its virtio-net, Ethernet, IP and TCP headers it fits a 16-bit
    /// frame length (and an IPv4 packet the 16-bit total length).
    public static func superframePayload(ipv6: Bool) -> Int {
        65_535 - 10 - 14 - 20 - (ipv6 ? IPv6View.headerLength : IPv4View.minimumHeaderLength)
    }
}

/// Byte and packet totals for one protocol of the NAT, both ways.
public struct TrafficCounters: Sendable, Equatable, Codable {
    public var packetsFromGuest = 0
    public var bytesFromGuest = 0
    public var packetsToGuest = 0
    public var bytesToGuest = 0

    public init() {}
}

/// What every TCP flow shares: settings, the output frames, the scratch
/// buffer peeks land in, and the counters.
public final class TCPContext {
    public let settings: TCPSettings
    public let frames: GuestFrames
    public var counters = TrafficCounters()
    /// Segments retransmitted to guests.
    public var retransmissions = 0
    /// Where a peek at a host socket lands before it is cut into segments.
    let scratch: UnsafeMutableRawBufferPointer
    /// The switch's ports: flows toward a backlogged one wait with their
    /// data in the host socket until it drains.
    public let ports: GuestPorts
    /// The most bytes gathered for one port before they are sent: flows stop
    /// there and go on once the batch is out, so a fast host cannot pile up
    /// more than this ahead of a guest.
    public var batchLimit = 1 << 20

    /// Whether flows toward `port` must wait.
    func isHeldBack(_ port: PortID) -> Bool {
        ports.isBacklogged(port) || frames.bytes(for: port) >= batchLimit
    }
    /// The initial sequence numbers' secret key, drawn once.
    private let sequenceKey: (UInt64, UInt64)
    /// Where the initial sequence numbers' clock starts: the first flow.
    private var sequenceEpoch: ContinuousClock.Instant?

    public init(settings: TCPSettings, frames: GuestFrames, ports: GuestPorts = GuestPorts()) {
        self.settings = settings
        self.frames = frames
        self.ports = ports
        scratch = .allocate(byteCount: min(settings.framesPerTurn * settings.maximumSegmentSize, max(settings.bytesPerTurn, 65_536)),
                            alignment: 16)
        var generator = SystemRandomNumberGenerator()
        sequenceKey = (generator.next(), generator.next())
    }

    deinit { scratch.deallocate() }

    /// The initial sequence number of a flow `key` opened at `now`, as RFC
    /// 6528 makes them: a 4 µs clock plus a keyed hash of the four-tuple
    /// (SipHash, keyed with a secret drawn at start). Off-path hosts cannot
    /// guess one; and a flow that reuses a four-tuple starts above the one
    /// before it, so a guest whose end of that one is in TIME-WAIT can take
    /// the new SYN (RFC 1122, 4.2.2.13; Linux checks the sequence number).
    func initialSequenceNumber(for key: FlowKey, now: ContinuousClock.Instant) -> UInt32 {
        let epoch = sequenceEpoch ?? now
        if sequenceEpoch == nil { sequenceEpoch = now }
        let elapsed = (now - epoch).components
        let ticks = elapsed.seconds &* 250_000 &+ elapsed.attoseconds / 4_000_000_000_000
        var hasher = Hasher()
        hasher.combine(sequenceKey.0)
        hasher.combine(sequenceKey.1)
        hasher.combine(key)
        return UInt32(truncatingIfNeeded: ticks) &+ UInt32(truncatingIfNeeded: hasher.finalize())
    }
}
