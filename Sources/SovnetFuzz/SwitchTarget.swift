// The virtual network under hostile guests: four ports whose frames the
// fuzzer writes, with floods made cheaply from them, against small limits
// (4 DHCP bindings and 8 MACs per port, 16 DNS queries waiting, 8 per
// port), so that every limit is reached. Each step's first byte picks an
// event:
//
//   0  a frame (a chunk) from the port the next byte picks
//   1  a flood: the last frame again, as many times as the next byte says,
//      from the port the byte after picks; each from a new source MAC (and,
//      in a DHCP message, a new chaddr and xid) or, when the third byte is
//      odd, the same MAC with a new UDP source port and DNS ID (UDP
//      checksums cleared)
//   2  the clock moving on (the next byte times 500 ms): timers run
//   3  the port the next byte picks leaving, and a new one taking its place
//   4  the upstream resolver's answer (a chunk), its ID made a waiting query's
//
// What must hold after every step: no port holds more bindings or MACs
// than its limit; no address is bound twice; every binding is in the
// subnet; the DNS queries waiting stay within their bounds; only live ports
// have counters; and every IPv4 or ARP frame switched or handed to the NAT
// came from a port its source address is bound to (0.0.0.0 only for DHCP).
import SovnetCore
import SovnetWire

final class SwitchTarget {
    private let network: VirtualNetwork
    private var ports: [PortID]
    private var now = ContinuousClock.Instant.now
    private var last: [UInt8] = []
    private var forwarded: [UInt16] = []
    private(set) var reached: Set<String> = []
    private var deliveries: [Delivery] = []

    init() {
        var configuration = VirtualNetworkConfiguration(upstreamResolverCount: 1)
        configuration.maximumLeasesPerPort = 4
        configuration.maximumMACsPerPort = 8
        configuration.maximumPendingQueries = 16
        configuration.maximumPendingQueriesPerPort = 8
        configuration.broadcastBurst = 1 << 20
        let network = VirtualNetwork(configuration: configuration)
        self.network = network
        ports = (0..<4).map { _ in network.attach() }
    }

    static func run(_ bytes: [UInt8]) -> Set<String> {
        let target = SwitchTarget()
        var input = FuzzInput(bytes)
        var steps = 0
        while !input.isAtEnd, steps < 256 {
            steps += 1
            target.step(&input)
            target.check()
        }
        return target.reached
    }

    private func step(_ input: inout FuzzInput) {
        switch input.byte() % 5 {
        case 0:
            last = input.chunk()
            receive(last, from: ports[Int(input.byte()) % ports.count])
        case 1:
            let count = Int(input.byte())
            let port = ports[Int(input.byte()) % ports.count]
            let sameMAC = input.byte() & 1 == 1
            for index in 0..<count { receive(Self.variant(of: last, index, sameMAC: sameMAC), from: port) }
            if count > 0 { reached.insert("flood") }
        case 2:
            now += .milliseconds(500 * Int(input.byte()))
            record(network.tick(now: now))
        case 3:
            let index = Int(input.byte()) % ports.count
            network.detach(ports[index], now: now)
            ports[index] = network.attach()
            reached.insert("reattached")
        default:
            var answer = input.chunk()
            if let id = forwarded.popLast(), answer.count >= 12 {
                answer[0] = UInt8(id >> 8)
                answer[1] = UInt8(id & 0xFF)
            }
            record(answer.withUnsafeBytes { network.upstreamDNSReply($0, from: 0) })
        }
    }

    private func receive(_ frame: [UInt8], from port: PortID) {
        deliveries.removeAll(keepingCapacity: true)
        frame.withUnsafeBytes { network.receive($0, from: port, now: now, into: &deliveries) }
        for delivery in deliveries {
            switch delivery {
            case .forward(let targets):
                reached.insert("switched")
                expect(!targets.contains(port) && targets.allSatisfy(ports.contains), "switched to \(targets) from \(port)")
                checkSource(frame, port: port)
            case .nat:
                reached.insert("nat")
                checkSource(frame, port: port)
            case .send:
                reached.insert("gateway-reply")
            case .resolve(let query, _):
                reached.insert("dns-upstream")
                if query.count >= 2 { forwarded.append(UInt16(query[0]) << 8 | UInt16(query[1])) }
            }
        }
        for change in network.takeBindingChanges() {
            reached.insert(change.from == nil ? "address-taken" : "binding-returned")
            expect(ports.contains(change.link.port), "a binding moved to \(change.link.port), which is gone")
        }
    }

    private func record(_ deliveries: [Delivery]) {
        for case .resolve(let query, _) in deliveries where query.count >= 2 {
            forwarded.append(UInt16(query[0]) << 8 | UInt16(query[1]))
        }
    }

    /// A frame that left its port must have come from an address bound to it.
    private func checkSource(_ frame: [UInt8], port: PortID) {
        frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw) else { return expect(false, "a malformed frame was passed on") }
            let source: IPv4Address?
            switch ethernet.etherType {
            case .ipv4: source = (try? IPv4View(ethernet.payload, verifyChecksum: false))?.source
            case .arp: source = (try? ARPPacket.parse(ethernet.payload))?.senderIP
            default: return
            }
            guard let source, source != .any else { return }
            expect(network.neighbor(source)?.port == port, "\(source) from \(port) passed on, bound to \(String(describing: network.neighbor(source)))")
        }
    }

    private func check() {
        let configuration = network.configuration
        var seen = Set<IPv4Address>()
        for lease in network.dhcp.leases {
            expect(seen.insert(lease.address).inserted, "\(lease.address) bound twice")
            expect(network.dhcp.configuration.contains(lease.address), "\(lease.address) bound outside the subnet")
        }
        for port in ports {
            expect(network.dhcp.leaseCount(on: port) <= configuration.maximumLeasesPerPort, "\(port) holds too many bindings")
            expect(network.macTable.values.filter { $0 == port }.count <= configuration.maximumMACsPerPort, "\(port) holds too many MACs")
        }
        if network.dhcp.leases.count >= 4 { reached.insert("leases") }
        expect(network.dns.pendingCount <= configuration.maximumPendingQueries, "\(network.dns.pendingCount) DNS queries wait")
        if network.dns.counters["servfail-limit", default: 0] > 0 { reached.insert("dns-limit") }
        if network.counters.drops[.spoofedAddress, default: 0] > 0 { reached.insert("spoofed") }
        if network.counters.drops[.macLimit, default: 0] > 0 { reached.insert("mac-limit") }
        expect(network.counters.ports.keys.allSatisfy { key in ports.contains { $0.rawValue == key } }, "counters of a departed port")
    }

    /// The frame made new for flood member `index`: its source MAC (and a
    /// DHCP message's chaddr and xid), or its UDP source port and DNS ID.
    static func variant(of frame: [UInt8], _ index: Int, sameMAC: Bool) -> [UInt8] {
        var copy = frame
        guard copy.count >= 14 else { return copy }
        let udp = copy.count >= 14 + 20 + 8 + 2 && copy[12] == 0x08 && copy[13] == 0x00 && copy[14] == 0x45 && copy[23] == 17
        if sameMAC {
            guard udp else { return copy }
            copy[34] = 0xC0 | UInt8(truncatingIfNeeded: index >> 8) & 0x3F
            copy[35] = UInt8(truncatingIfNeeded: index)
            copy[40] = 0
            copy[41] = 0
            copy[42] = UInt8(truncatingIfNeeded: index >> 8)
            copy[43] = UInt8(truncatingIfNeeded: index)
            return copy
        }
        copy[6] = 0x02
        copy[10] = UInt8(truncatingIfNeeded: index >> 8)
        copy[11] = UInt8(truncatingIfNeeded: index)
        // IPv4 without options, UDP to port 67: chaddr at 14 + 20 + 8 + 28, xid at + 4.
        if udp, copy.count >= 14 + 20 + 8 + 34, copy[36] == 0, copy[37] == 67 {
            copy[40] = 0
            copy[41] = 0
            copy[46] = UInt8(truncatingIfNeeded: index)
            for offset in 0..<6 { copy[70 + offset] = copy[6 + offset] }
        }
        return copy
    }

    /// Frames of the recording, each from port 0 then flooded from port 1
    /// (new MACs) and port 0 (new queries), with time and a reattached port
    /// between; and a guest that uses an address without asking, leaves and
    /// comes back, and a DHCP client without a client identifier flooding.
    static func seeds(from frames: [[UInt8]]) -> [[UInt8]] {
        let dhcp = frames.filter { FuzzTarget.udpPayload($0, port: 67) != nil }
        let dns = frames.filter { FuzzTarget.udpPayload($0, port: 53) != nil }
        let arp = frames.filter { $0.count > 13 && $0[12] == 0x08 && $0[13] == 0x06 }
        let icmp = frames.filter { $0.count > 23 && $0[12] == 0x08 && $0[13] == 0x00 && $0[23] == 1 }
        func script(_ chosen: [[UInt8]]) -> [UInt8] {
            chosen.flatMap { [0] + FuzzInput.chunk($0) + [0, 1, 40, 1, 0, 1, 20, 0, 1, 2, 8, 3, 1, 4] + FuzzInput.chunk($0) }
        }
        let squatter = MACAddress(0x02, 0, 0, 0, 0, 0x50)
        var used: [UInt8] = []
        EthernetHeader(destination: VirtualNetworkConfiguration().gatewayMAC, source: squatter, etherType: .ipv4).emit(into: &used)
        IPv4Header(source: IPv4Address(192, 168, 127, 50), destination: IPv4Address(192, 168, 127, 1), protocol: .udp,
                   payloadLength: 12, ttl: 64, identification: 1).emit(into: &used)
        UDPHeader(sourcePort: 5000, destinationPort: 9).emit(payload: [1, 2, 3, 4], source: IPv4Address(192, 168, 127, 50),
                                                         destination: IPv4Address(192, 168, 127, 1), into: &used)
        var discover = DHCPMessage(operation: .request, transactionID: 9, clientMAC: squatter)
        discover.options.messageType = .discover
        var asking: [UInt8] = []
        if let payload = try? discover.bytes() {
            EthernetHeader(destination: .broadcast, source: squatter, etherType: .ipv4).emit(into: &asking)
            IPv4Header(source: .any, destination: .broadcast, protocol: .udp, payloadLength: 8 + payload.count, ttl: 64,
                       identification: 2).emit(into: &asking)
            UDPHeader(sourcePort: 68, destinationPort: 67).emit(payload: payload, source: .any, destination: .broadcast, into: &asking)
        }
        let returning = [0] + FuzzInput.chunk(used) + [2, 3, 2, 0] + FuzzInput.chunk(used) + [2]
            + [0] + FuzzInput.chunk(asking) + [3, 1, 12, 3, 0]
        return [script(dhcp), script(dns), script(arp + icmp), script(Array(frames.prefix(24))), returning].filter { !$0.isEmpty }
    }
}
