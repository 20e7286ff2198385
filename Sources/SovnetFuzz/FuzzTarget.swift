// The fuzz targets: one per parser family, framing decoder and state machine,
// and the proxy's frame input as a whole. `run` is what libFuzzer calls with
// each input (through `sovnet-fuzz`); it returns the milestones the input
// reached, so that tests can tell a seed that goes deep from one that stops
// at the first check. `seeds` turns recorded frames into starting inputs in
// each target's format.
import SovnetCore
import SovnetWire

/// A fuzz target of sovnet.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// An Ethernet frame, layer by layer (ARP, IPv4, ICMP, TCP, UDP, DNS, DHCP).
    case frame
    /// A DHCP message.
    case dhcp
    /// A DHCPv6 message, and the gateway's DHCPv6 server's answer to it.
    case dhcpv6
    /// A DNS message.
    case dns
    /// A virtio-net header and its frame, through the software offloads.
    case virtio
    /// The stream framings' decoder (qemu, vm, stdio, serial).
    case stream
    /// The DHCP client's state machine, fed with frames and time.
    case dhcpClient = "dhcp-client"
    /// The proxy's frame input: the virtual network and the NAT's cores.
    case network
    /// The virtual network under hostile guests' floods: DHCP server, address checks, DNS resolver.
    case `switch`

    /// Runs one input; returns the milestones it reached.
    @discardableResult
    public func run(_ bytes: [UInt8]) -> Set<String> {
        switch self {
        case .frame: WireTargets.frame(bytes)
        case .dhcp: WireTargets.dhcp(bytes)
        case .dhcpv6: WireTargets.dhcpv6(bytes)
        case .dns: WireTargets.dns(bytes)
        case .virtio: WireTargets.virtio(bytes)
        case .stream: StreamTarget.run(bytes)
        case .dhcpClient: DHCPClientTarget.run(bytes)
        case .network: NetworkTarget.run(bytes)
        case .switch: SwitchTarget.run(bytes)
        }
    }

    /// Starting inputs made from recorded Ethernet frames.
    public func seeds(from frames: [[UInt8]]) -> [[UInt8]] {
        switch self {
        case .frame: frames
        case .dhcp: frames.compactMap { Self.udpPayload($0, port: 67) ?? Self.udpPayload($0, port: 68) }
        case .dhcpv6: frames.compactMap { Self.udpPayload($0, port: 547) }
        case .dns: frames.compactMap { Self.udpPayload($0, port: 53) }
        case .virtio: frames.flatMap(Self.virtioSeeds)
        case .stream: StreamTarget.seeds(from: frames)
        case .dhcpClient: DHCPClientTarget.seeds(from: frames)
        case .network: NetworkTarget.seeds(from: frames)
        case .switch: SwitchTarget.seeds(from: frames)
        }
    }

    /// The payload of a UDP datagram to or from `port`, over IPv4 or IPv6.
    static func udpPayload(_ frame: [UInt8], port: UInt16) -> [UInt8]? {
        frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw) else { return nil }
            let datagram: UnsafeRawBufferPointer
            if let ip = try? IPv4View(ethernet.payload), ip.protocol == .udp {
                datagram = ip.payload
            } else if let ip = try? IPv6View(ethernet.payload), ip.nextHeader == .udp {
                datagram = ip.payload
            } else {
                return nil
            }
            guard let udp = try? UDPView(datagram), udp.sourcePort == port || udp.destinationPort == port else { return nil }
            return Array(udp.payload)
        }
    }

    /// A frame behind a header that asks nothing, one that asks for its
    /// checksum, and, for TCP with a payload, one that makes it a superframe.
    static func virtioSeeds(_ frame: [UInt8]) -> [[UInt8]] {
        var plain: [UInt8] = []
        VirtioNetHeader().emit(into: &plain)
        var seeds = [plain + frame]
        let tcp: (transport: Int, header: Int, payload: Int)? = frame.withUnsafeBytes { raw in
            guard let ethernet = try? EthernetView(raw), let ip = try? IPv4View(ethernet.payload), ip.protocol == .tcp,
                  let tcp = try? TCPView(ip.payload) else { return nil }
            let transport = ethernet.payloadOffset + ip.headerLength
            return (transport, transport + tcp.headerLength, tcp.payload.count)
        }
        guard let tcp else { return seeds }
        var checksum: [UInt8] = []
        VirtioNetHeader(headerLength: tcp.header, transportStart: tcp.transport, segmentSize: nil).emit(into: &checksum)
        seeds.append(checksum + frame)
        if tcp.payload > 1 {
            var superframe: [UInt8] = []
            VirtioNetHeader(headerLength: tcp.header, transportStart: tcp.transport,
                            segmentSize: max(SoftwareOffload.minimumSegmentSize, tcp.payload / 3)).emit(into: &superframe)
            seeds.append(superframe + frame)
        }
        return seeds
    }
}
