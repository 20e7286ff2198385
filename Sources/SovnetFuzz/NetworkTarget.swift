// The proxy's frame input as a whole under a fuzzer: one virtual network
// with two guest ports (switch, ARP, ICMP, DHCP server, DNS with one
// upstream), and behind it the real NAT core (`NATCore`: reassembly,
// policy, flow admission, the TCP, UDP and ICMP echo tables) whose host is
// in memory (`FuzzNATHost`, `FuzzSocket`), so nothing leaves the process.
// Each step's first byte picks an event:
//
//   0, 1  a frame (a chunk) from guest port 0 or 1 (the next byte's low
//         bit); with its second bit, a TCP segment of a known flow has its
//         acknowledgment number made the flow's last sequence sent, as a
//         guest's would be (recorded segments carry another peer's)
//   2     the upstream resolver's answer (a chunk) to the last query sent
//         upstream, its ID made the query's
//   3     the clock moving on (the next byte times 100 ms): every timer runs
//   4     host bytes (a chunk) for a TCP flow the next byte picks
//   5     a host event for that flow (the next byte): connected, refused,
//         end of stream, reset, or room in its socket (the byte after
//         times 64 bytes)
//   6     port 1's guest leaving and another taking its place
//   7     the host's datagrams and forwards (the next byte): a datagram
//         (a chunk) on a UDP or echo flow the byte after picks, port
//         unreachable on it, the next send refused, a connection a TCP
//         forward accepted for 192.168.127.X and a port, a datagram a UDP
//         forward got from a client, or a UDP forward removed
//
// Frames of both IP families reach the NAT alike.
//
// Every step has the same shape whatever state it finds, so a mutation
// changes one step, not the reading of all that follow.
//
// What must hold: every frame the network or the NAT sends parses, with
// checksums right (except TCP checksums left to an offloading guest's
// kernel); a frame is switched only to ports that exist, never back to the
// one it came from; the sockets' contract holds (FuzzSocket) and so does
// the host's (FuzzNATHost).
import Glibc
import SovnetCore
import SovnetWire

final class NetworkTarget {
    private let network: VirtualNetwork
    private var ports: [PortID]
    private let host = FuzzNATHost()
    private let nat: NATCore
    private var now = ContinuousClock.Instant.now
    private var pendingQuery: [UInt8]?
    /// Where each flow's last segment to the guest ended, in sequence space.
    private var sentEnd: [FlowKey: UInt32] = [:]
    private var deliveries: [Delivery] = []
    private(set) var reached: Set<String> = []

    init() {
        network = VirtualNetwork(configuration: VirtualNetworkConfiguration(upstreamResolverCount: 1))
        ports = [network.attach(), network.attach()]
        var settings = NATSettings()
        settings.maximumFlows = 32
        settings.maximumFlowsPerGuest = 16
        settings.idleTimeout = .seconds(5)
        let network = network
        nat = NATCore(settings: settings, network: network.configuration, ports: network.ports, host: host,
                      frameCapacity: 1 << 16) { network.neighbor($0) }
    }

    static func run(_ bytes: [UInt8]) -> Set<String> {
        let target = NetworkTarget()
        var input = FuzzInput(bytes)
        var steps = 0
        while !input.isAtEnd, steps < 512 {
            steps += 1
            target.step(&input)
        }
        target.nat.closeAll()
        target.host.checkConnections()
        expect(target.host.sockets.isEmpty && target.host.datagrams.isEmpty, "sockets left open after every flow closed")
        return target.reached.union(target.host.reports)
            .union(target.network.counters.drops.keys.map { "drop-\($0.rawValue)" })
            .union(target.nat.statistics.drops.keys.map { "nat-drop-\($0)" })
    }

    /// The guests' frames among `frames` from port 0, the clock moving
    /// between them; then the same with each flow connected on the host and
    /// given host bytes after every frame; then the guests' IPv6 frames
    /// alone, and again sent beyond the link (to 2001:db8::1), so the NAT's
    /// IPv6 paths have seeds of their own.
    static func seeds(from frames: [[UInt8]]) -> [[UInt8]] {
        let guestMAC = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
        let guest = frames.filter { frame in frame.withUnsafeBytes { (try? EthernetView($0))?.source == guestMAC } }
        let ipv6 = guest.filter { frame in frame.withUnsafeBytes { (try? EthernetView($0))?.etherType == .ipv6 } }
        func steps(_ frames: [[UInt8]]) -> (plain: [UInt8], served: [UInt8]) {
            var plain: [UInt8] = []
            var served: [UInt8] = []
            for (index, frame) in frames.prefix(200).enumerated() {
                plain += [0, 2] + FuzzInput.chunk(frame)
                served += [0, 2] + FuzzInput.chunk(frame) + [5, UInt8(index & 0xFF), 0, 0]
                    + [4, UInt8(index & 0xFF)] + FuzzInput.chunk(Array("host bytes \(index)\n".utf8))
                if index % 10 == 9 { plain += [3, 1] }
            }
            return (plain, served)
        }
        let all = steps(guest)
        let beyond = steps(ipv6.map { retargeted($0, to: IPv6Address(high: 0x2001_0DB8 << 32, low: 1)) })
        return [all.plain, all.served, all.plain + [3, 255, 3, 255], steps(ipv6).plain, beyond.plain, beyond.served]
    }

    /// An IPv6 frame sent to `destination` instead, its upper layer's
    /// checksum updated for the new pseudo-header (RFC 1624); other frames as they are.
    static func retargeted(_ frame: [UInt8], to destination: IPv6Address) -> [UInt8] {
        var frame = frame
        let found: (start: Int, field: Int?, old: IPv6Address)? = frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw), let ip = try? IPv6View(ethernet.payload), !ip.destination.isMulticast,
                  let upper = try? ip.upperLayer(), upper.fragment == nil else { return nil }
            let transport = ethernet.payloadOffset + ip.bytes.count - upper.payload.count
            let offset: Int? = switch upper.protocol {
            case .tcp: 16
            case .udp: 6
            case .icmpv6: 2
            default: nil
            }
            return (ethernet.payloadOffset, offset.map { transport + $0 }, ip.destination)
        }
        guard let found else { return frame }
        var old: [UInt8] = []
        var new: [UInt8] = []
        found.old.append(to: &old)
        destination.append(to: &new)
        frame.replaceSubrange((found.start + 24)..<(found.start + 40), with: new)
        guard let field = found.field, field + 2 <= frame.count else { return frame }
        var checksum = UInt16(frame[field]) << 8 | UInt16(frame[field + 1])
        for index in stride(from: 0, to: 16, by: 2) {
            checksum = InternetChecksum.update(checksum, old: UInt16(old[index]) << 8 | UInt16(old[index + 1]),
                                               new: UInt16(new[index]) << 8 | UInt16(new[index + 1]))
        }
        frame[field] = UInt8(checksum >> 8)
        frame[field + 1] = UInt8(checksum & 0xFF)
        return frame
    }

    private func step(_ input: inout FuzzInput) {
        switch input.byte() % 8 {
        case 0, 1:
            let control = input.byte()
            let port = ports[Int(control & 1)]
            var frame = input.chunk()
            if control & 2 != 0 { adoptAcknowledgment(&frame) }
            frame.withUnsafeBytes { raw in
                host.ledger.offered += Self.tcpPayloadLength(raw)
                deliveries.removeAll(keepingCapacity: true)
                network.receive(raw, from: port, now: now, into: &deliveries, nat: nat)
                handle(deliveries, from: port)
            }
            if !reached.contains("nat"), Self.packetsTaken(nat.statistics) > 0 { reached.insert("nat") }
        case 2:
            var answer = input.chunk()
            guard let query = pendingQuery, query.count >= 2 else { return }
            if answer.count >= 2 { answer[0...1] = query[0...1] }
            answer.withUnsafeBytes { handle(network.upstreamDNSReply($0, from: 0), from: nil) }
        case 3:
            now += .milliseconds(100 * Int(input.byte()))
            handle(network.tick(now: now), from: nil)
            nat.tick(now: now)
        case 4:
            let id = pick(&input, from: host.sockets.keys)
            let bytes = input.chunk()
            guard let id, let socket = host.sockets[id] else { return }
            socket.incoming += bytes
            nat.hostSocketReady(id, readable: true, writable: false, now: now)
        case 5:
            let id = pick(&input, from: host.sockets.keys)
            let event = input.byte() % 5
            let room = 64 * Int(input.byte())
            guard let id, let socket = host.sockets[id] else { return }
            switch event {
            case 0:
                socket.connectResult = 0
                nat.hostSocketReady(id, readable: false, writable: true, now: now)
            case 1:
                socket.connectResult = ECONNREFUSED
                nat.hostSocketReady(id, readable: false, writable: true, now: now)
            case 2:
                socket.endOfStream = true
                nat.hostSocketReady(id, readable: true, writable: false, now: now)
            case 3:
                socket.failure = ECONNRESET
                nat.hostSocketReady(id, readable: true, writable: false, now: now)
            default:
                socket.room += room
                nat.hostSocketReady(id, readable: false, writable: true, now: now)
            }
        case 6:
            network.detach(ports[1], now: now)
            nat.detach(ports[1], now: now)
            ports[1] = network.attach()
        default:
            hostDatagramOrForward(&input)
        }
        for change in network.takeBindingChanges() where change.from != nil { nat.follow(change, now: now) }
        nat.endBatch(now: now)
        nat.runTurns(now: now)
        host.checkConnections()
        if !host.sockets.isEmpty, nat.statistics.tcpStates["established"] != nil { reached.insert("tcp-open") }
        checkFrames()
    }

    /// Event 7: what arrives on the host's datagram sockets and forwards.
    private func hostDatagramOrForward(_ input: inout FuzzInput) {
        let event = input.byte() % 6
        let id = pick(&input, from: host.datagrams.keys)
        let number = input.byte()
        let port = input.uint16()
        let bytes = input.chunk()
        bytes.withUnsafeBytes { payload in
            switch event {
            case 0:
                guard let id else { return }
                if host.datagrams[id] == .echo {
                    nat.receiveEcho(payload, on: id, now: now)
                } else {
                    nat.receiveDatagram(payload, on: id, now: now)
                }
            case 1:
                guard let id else { return }
                nat.datagramRefused(id)
            case 2:
                host.refuseNextSend = true
            case 3:
                nat.acceptForwarded(host.connection(), to: .v4(IPv4Address(192, 168, 127, number)), port: port, now: now)
                reached.insert("tcp-forward")
            case 4:
                nat.receiveForwarded(payload, from: HostEndpoint(.v4(IPv4Address(127, 0, 0, 1)), port), forward: UInt64(number % 4),
                                     to: .v4(IPv4Address(192, 168, 127, 2)), port: 53, now: now)
                reached.insert("udp-forward")
            default:
                nat.forwardRemoved(UInt64(number % 4))
            }
        }
    }

    /// Rewrites a TCP segment's acknowledgment number to its flow's last
    /// sequence sent, updating the checksum (RFC 1624).
    private func adoptAcknowledgment(_ frame: inout [UInt8]) {
        let found: (offset: Int, acknowledgment: UInt32, end: UInt32)? = frame.withUnsafeBytes { raw in
            guard let (packet, offset) = Self.packet(raw), packet.protocol == .tcp, !packet.isFragment,
                  let tcp = try? TCPView(packet.transport),
                  let end = sentEnd[FlowKey(guest: packet.source, guestPort: tcp.sourcePort, remote: packet.destination,
                                            remotePort: tcp.destinationPort)] else { return nil }
            return (offset, tcp.acknowledgmentNumber, end)
        }
        guard let found else { return }
        let checksum = UInt16(frame[found.offset + 16]) << 8 | UInt16(frame[found.offset + 17])
        let updated = InternetChecksum.update(checksum, old: found.acknowledgment, new: found.end)
        for index in 0..<4 { frame[found.offset + 8 + index] = UInt8(truncatingIfNeeded: found.end >> (24 - 8 * index)) }
        frame[found.offset + 16] = UInt8(updated >> 8)
        frame[found.offset + 17] = UInt8(updated & 0xFF)
    }

    /// One of `ids`, in a stable order, by the next byte; nil when there are none.
    private func pick(_ input: inout FuzzInput, from ids: Dictionary<FlowID, some Any>.Keys) -> FlowID? {
        let index = Int(input.byte())
        guard !ids.isEmpty else { return nil }
        return ids.sorted()[index % ids.count]
    }

    /// Carries out what the network decided for a frame (or a timer's answers).
    private func handle(_ deliveries: [Delivery], from port: PortID?) {
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
                expect(false, "a frame marked for the NAT although the network has one")
            }
        }
    }

    /// The guest packets the NAT took or dropped.
    private static func packetsTaken(_ statistics: NATStatistics) -> Int {
        statistics.tcp.packetsFromGuest + statistics.udp.packetsFromGuest + statistics.icmp.packetsFromGuest
            + statistics.drops.values.reduce(0, +)
    }

    /// The TCP payload a frame may carry: a segment's, or a fragment's whole payload.
    private static func tcpPayloadLength(_ frame: UnsafeRawBufferPointer) -> Int {
        guard let (packet, _) = Self.packet(frame), packet.protocol == .tcp else { return 0 }
        if packet.isFragment { return packet.transport.count }
        return (try? TCPView(packet.transport))?.payload.count ?? 0
    }

    /// The IPv4 or IPv6 packet of a frame, and where its transport header is in the frame.
    private static func packet(_ frame: UnsafeRawBufferPointer, verifyChecksum: Bool = false) -> (IPPacket, transportOffset: Int)? {
        guard let ethernet = try? EthernetView(frame),
              let packet = IPPacket(ethernet.payload, etherType: ethernet.etherType, verifyChecksum: verifyChecksum) else { return nil }
        return (packet, ethernet.payloadOffset + packet.transportOffset)
    }

    /// Every frame the NAT made for guests parses.
    private func checkFrames() {
        let frames = nat.frames
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
            guard let (packet, _) = Self.packet(raw), packet.protocol == .tcp, !packet.isFragment,
                  let tcp = try? TCPView(packet.transport) else { return }
            let flags = tcp.flags
            let length = tcp.payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
            sentEnd[FlowKey(guest: packet.destination, guestPort: tcp.destinationPort, remote: packet.source,
                            remotePort: tcp.sourcePort)] = tcp.sequenceNumber &+ UInt32(length)
        }
    }

    /// A frame for a guest: Ethernet, and IPv4 or IPv6 with its checksums right.
    private static func checkFrame(_ bytes: ArraySlice<UInt8>, offload: Bool) {
        bytes.withUnsafeBytes { raw in
            let ethernet = try? EthernetView(raw)
            expect(ethernet != nil, "a frame for a guest is not Ethernet")
            guard let ethernet, ethernet.etherType == .ipv4 || ethernet.etherType == .ipv6 else { return }
            let packet = Self.packet(raw, verifyChecksum: true)?.0
            expect(packet != nil, "an IP packet for a guest does not parse, or its IPv4 header checksum is wrong")
            guard let packet, !packet.isFragment else { return }
            switch packet.protocol {
            case .tcp where !offload:
                expect((try? TCPView(packet.transport, source: packet.source, destination: packet.destination)) != nil,
                       "a TCP segment for a guest with a wrong checksum")
            case .udp:
                expect((try? UDPView(packet.transport, source: packet.source, destination: packet.destination)) != nil,
                       "a UDP datagram for a guest with a wrong checksum")
            case .icmp:
                expect((try? ICMPv4View(packet.transport)) != nil, "an ICMP message for a guest with a wrong checksum")
            case .icmpv6:
                expect((try? ICMPv6View(packet.transport, source: packet.source.asIPv6, destination: packet.destination.asIPv6)) != nil,
                       "an ICMPv6 message for a guest with a wrong checksum")
            default:
                break
            }
        }
    }
}
