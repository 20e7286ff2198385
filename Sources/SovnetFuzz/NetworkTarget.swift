// The proxy's frame input as a whole under a fuzzer: one virtual network
// with two guest ports (switch, ARP, ICMP, DHCP server, DNS with one
// upstream), and behind it the NAT's cores: IPv4 reassembly, the NAT policy
// and TCP flows whose host sockets are in memory (FuzzSocket), so nothing
// leaves the process. Each step's first byte picks an event:
//
//   0, 1  a frame (a chunk) from guest port 0 or 1 (the next byte's low
//         bit); with its second bit, a TCP segment of a known flow has its
//         acknowledgment number made the flow's last sequence sent, as a
//         guest's would be (recorded segments carry another peer's)
//   2     the upstream resolver's answer (a chunk) to the last query sent
//         upstream, its ID made the query's
//   3     the clock moving on (the next byte times 100 ms): every timer runs
//   4     host bytes (a chunk) for a flow the next byte picks
//   5     a host event for that flow (the next byte): connected, refused,
//         end of stream, reset, or room in its socket (the byte after
//         times 64 bytes)
//   6     port 1's guest leaving and another taking its place
//
// Every step has the same shape whatever state it finds, so a mutation
// changes one step, not the reading of all that follow.
//
// What must hold: every frame the network or the NAT sends parses, with
// checksums right (except TCP checksums left to an offloading guest's
// kernel); a frame is switched only to ports that exist, never back to the
// one it came from; the sockets' contract holds (FuzzSocket).
import Glibc
import SovnetCore
import SovnetWire

final class NetworkTarget {
    private let network: VirtualNetwork
    private var ports: [PortID]
    private let policy = NATPolicy()
    private var reassembler = IPv4Reassembler(maximumDatagrams: 8, timeout: .seconds(5))
    private let frames: GuestFrames
    private let context: TCPContext
    private var flows: [FlowKey: (flow: TCPFlow, socket: FuzzSocket)] = [:]
    private var order: [FlowKey] = []
    private var now = ContinuousClock.Instant.now
    private var pendingQuery: [UInt8]?
    /// Where each flow's last segment to the guest ended, in sequence space.
    private var sentEnd: [FlowKey: UInt32] = [:]
    private var deliveries: [Delivery] = []
    private(set) var reached: Set<String> = []
    static let maximumFlows = 32

    init() {
        network = VirtualNetwork(configuration: VirtualNetworkConfiguration(upstreamResolverCount: 1))
        ports = [network.attach(), network.attach()]
        frames = GuestFrames(gatewayMAC: network.configuration.gatewayMAC, mtu: 1500, capacity: 1 << 16)
        context = TCPContext(settings: TCPSettings(mtu: 1500), frames: frames)
    }

    static func run(_ bytes: [UInt8]) -> Set<String> {
        let target = NetworkTarget()
        var input = FuzzInput(bytes)
        var steps = 0
        while !input.isAtEnd, steps < 512 {
            steps += 1
            target.step(&input)
        }
        return target.reached.union(target.network.counters.drops.keys.map { "drop-\($0.rawValue)" })
    }

    /// The guests' frames among `frames` from port 0, the clock moving
    /// between them; then the same with each flow connected on the host and
    /// given host bytes after every frame.
    static func seeds(from frames: [[UInt8]]) -> [[UInt8]] {
        let guestMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
        let guest = frames.filter { frame in frame.withUnsafeBytes { (try? EthernetView($0))?.source == guestMAC } }
        var plain: [UInt8] = []
        var served: [UInt8] = []
        for (index, frame) in guest.prefix(200).enumerated() {
            plain += [0, 2] + FuzzInput.chunk(frame)
            served += [0, 2] + FuzzInput.chunk(frame) + [5, UInt8(index & 0xFF), 0, 0]
                + [4, UInt8(index & 0xFF)] + FuzzInput.chunk(Array("host bytes \(index)\n".utf8))
            if index % 10 == 9 { plain += [3, 1] }
        }
        return [plain, served, plain + [3, 255, 3, 255]]
    }

    private func step(_ input: inout FuzzInput) {
        switch input.byte() % 7 {
        case 0, 1:
            let control = input.byte()
            let port = ports[Int(control & 1)]
            var frame = input.chunk()
            if control & 2 != 0 { adoptAcknowledgment(&frame) }
            frame.withUnsafeBytes { raw in
                deliveries.removeAll(keepingCapacity: true)
                network.receive(raw, from: port, now: now, into: &deliveries)
                handle(deliveries, frame: raw, from: port)
            }
        case 2:
            var answer = input.chunk()
            guard let query = pendingQuery, query.count >= 2 else { return }
            if answer.count >= 2 { answer[0...1] = query[0...1] }
            answer.withUnsafeBytes { handle(network.upstreamDNSReply($0, from: 0), frame: nil, from: nil) }
        case 3:
            now += .milliseconds(100 * Int(input.byte()))
            handle(network.tick(now: now), frame: nil, from: nil)
            _ = reassembler.expire(now: now)
            for key in order {
                guard let entry = flows[key] else { continue }
                if let deadline = entry.flow.deadline, deadline <= now { entry.flow.tick(now: now) }
                settle(key)
            }
        case 4:
            let key = pickFlow(&input)
            let bytes = input.chunk()
            guard let key, let entry = flows[key] else { return }
            entry.socket.incoming += bytes
            entry.flow.hostReadable(now: now)
            settle(key)
        case 5:
            let key = pickFlow(&input)
            let event = input.byte() % 5
            let room = 64 * Int(input.byte())
            guard let key, let entry = flows[key] else { return }
            switch event {
            case 0 where entry.flow.phase == .connecting: entry.flow.hostConnected(now: now)
            case 1 where entry.flow.phase == .connecting: entry.flow.hostConnectFailed(ECONNREFUSED)
            case 2:
                entry.socket.endOfStream = true
                entry.flow.hostReadable(now: now)
            case 3:
                entry.socket.failure = ECONNRESET
                entry.flow.hostReadable(now: now)
            default:
                entry.socket.room += room
                entry.flow.hostWritable(now: now)
            }
            settle(key)
        default:
            network.detach(ports[1], now: now)
            ports[1] = network.attach()
        }
        checkFrames()
    }

    /// Rewrites a TCP segment's acknowledgment number to its flow's last
    /// sequence sent, updating the checksum (RFC 1624).
    private func adoptAcknowledgment(_ frame: inout [UInt8]) {
        let found: (offset: Int, acknowledgment: UInt32, end: UInt32)? = frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw), let ip = try? IPv4View(ethernet.payload, verifyChecksum: false),
                  ip.protocol == .tcp, let tcp = try? TCPView(ip.payload),
                  let end = sentEnd[FlowKey(guest: ip.source, guestPort: tcp.sourcePort, remote: ip.destination,
                                            remotePort: tcp.destinationPort)] else { return nil }
            return (ethernet.payloadOffset + ip.headerLength, tcp.acknowledgmentNumber, end)
        }
        guard let found else { return }
        let checksum = UInt16(frame[found.offset + 16]) << 8 | UInt16(frame[found.offset + 17])
        let updated = InternetChecksum.update(checksum, old: found.acknowledgment, new: found.end)
        for index in 0..<4 { frame[found.offset + 8 + index] = UInt8(truncatingIfNeeded: found.end >> (24 - 8 * index)) }
        frame[found.offset + 16] = UInt8(updated >> 8)
        frame[found.offset + 17] = UInt8(updated & 0xFF)
    }

    private func pickFlow(_ input: inout FuzzInput) -> FlowKey? {
        let index = Int(input.byte())
        return order.isEmpty ? nil : order[index % order.count]
    }

    /// Carries out what the network decided for a frame (or a timer's answers).
    private func handle(_ deliveries: [Delivery], frame: UnsafeRawBufferPointer?, from port: PortID?) {
        for delivery in deliveries {
            switch delivery {
            case .forward(let targets):
                expect(port.map { !targets.contains($0) } ?? false, "a frame switched back to its own port, or from nowhere")
                expect(targets.allSatisfy(ports.contains), "a frame for a port that is gone")
                reached.insert("switched")
            case .send(let bytes, _):
                Self.checkFrame(bytes[...], offload: false)
                reached.insert("gateway-reply")
            case .resolve(let query, let upstream):
                expect(upstream == 0, "a query for upstream \(upstream) of 1")
                pendingQuery = query
                reached.insert("dns-upstream")
            case .nat:
                guard let frame, let port else { continue }
                reached.insert("nat")
                nat(frame, from: port)
            }
        }
    }

    /// A frame for the NAT: reassembled if need be, then to its TCP flow.
    private func nat(_ frame: UnsafeRawBufferPointer, from port: PortID) {
        guard let ethernet = try? EthernetView(frame), let ip = try? IPv4View(ethernet.payload) else { return }
        let link = GuestLink(port: port, mac: ethernet.source)
        guard ip.isFragment else { return tcp(ip, link: link) }
        if case .complete(let packet) = reassembler.add(ip, now: now) {
            reached.insert("reassembled")
            packet.withUnsafeBytes { bytes in
                if let whole = try? IPv4View(bytes) { tcp(whole, link: link) }
            }
        }
    }

    private func tcp(_ ip: IPv4View, link: GuestLink) {
        guard ip.protocol == .tcp, admitted(ip.destination),
              let segment = try? TCPView(ip.payload, source: ip.source, destination: ip.destination) else { return }
        let key = FlowKey(guest: ip.source, guestPort: segment.sourcePort, remote: ip.destination,
                          remotePort: segment.destinationPort)
        if let entry = flows[key] {
            entry.socket.offered += segment.payload.count
            entry.flow.guest(segment, now: now)
            reached.insert("tcp-segment")
            settle(key)
            return
        }
        let flags = segment.flags
        guard flags.contains(.syn), !flags.contains(.ack), !flags.contains(.rst), flows.count < Self.maximumFlows else { return }
        let socket = FuzzSocket()
        let flow = TCPFlow(guestSYN: segment, key: key, link: link, socket: socket, context: context, now: now)
        flows[key] = (flow, socket)
        order.append(key)
        reached.insert("tcp-flow")
    }

    /// Whether the NAT takes TCP to `destination`: the gateway's own services
    /// (DNS over TCP, the API: flows on socket pairs in the driver) and the
    /// hosts its policy lets through.
    private func admitted(_ destination: IPv4Address) -> Bool {
        if destination == network.configuration.gatewayAddress { return true }
        if case .host = policy.decide(destination) { return true }
        return false
    }

    /// After an event: owed ACKs sent, another turn for a flow that wants
    /// one, closed flows forgotten.
    private func settle(_ key: FlowKey) {
        guard let entry = flows[key] else { return }
        if entry.flow.phase == .open { reached.insert("tcp-open") }
        if entry.flow.needsFlush { entry.flow.flushAcknowledgment() }
        if entry.flow.wantsTurn { entry.flow.pump(now: now) }
        if entry.flow.phase == .closed {
            entry.socket.close(reset: true)
            flows[key] = nil
            order.removeAll { $0 == key }
            reached.insert("tcp-closed")
        }
    }

    /// Every frame the NAT made for guests parses.
    private func checkFrames() {
        for frame in frames.frames {
            let bytes = frames.storage[frame.range.dropFirst(frame.headerLength)]
            Self.checkFrame(bytes, offload: frame.headerLength > 0)
            recordSent(bytes)
            reached.insert("nat-frame")
        }
        frames.removeAll()
    }

    private func recordSent(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw), let ip = try? IPv4View(ethernet.payload), ip.protocol == .tcp,
                  let tcp = try? TCPView(ip.payload) else { return }
            let flags = tcp.flags
            let length = tcp.payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
            sentEnd[FlowKey(guest: ip.destination, guestPort: tcp.destinationPort, remote: ip.source,
                            remotePort: tcp.sourcePort)] = tcp.sequenceNumber &+ UInt32(length)
        }
    }

    /// A frame for a guest: Ethernet, and IPv4 with its checksums right.
    private static func checkFrame(_ bytes: ArraySlice<UInt8>, offload: Bool) {
        bytes.withUnsafeBytes { raw in
            let ethernet = try? EthernetView(raw)
            expect(ethernet != nil, "a frame for a guest is not Ethernet")
            guard let ethernet, ethernet.etherType == .ipv4 else { return }
            let ip = try? IPv4View(ethernet.payload)
            expect(ip != nil, "an IPv4 packet for a guest does not parse, or its checksum is wrong")
            guard let ip, !ip.isFragment else { return }
            switch ip.protocol {
            case .tcp where !offload:
                expect((try? TCPView(ip.payload, source: ip.source, destination: ip.destination)) != nil,
                       "a TCP segment for a guest with a wrong checksum")
            case .udp:
                expect((try? UDPView(ip.payload, source: ip.source, destination: ip.destination)) != nil,
                       "a UDP datagram for a guest with a wrong checksum")
            case .icmp:
                expect((try? ICMPv4View(ip.payload)) != nil, "an ICMP message for a guest with a wrong checksum")
            default:
                break
            }
        }
    }
}
