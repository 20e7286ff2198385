/// Why the virtual network dropped a frame; each is counted in `/stats`.
public enum DropReason: String, CaseIterable, Sendable, Codable {
    /// Not a well-formed Ethernet frame.
    case malformedFrame = "malformed-frame"
    /// A group address used as a source.
    case multicastSource = "multicast-source"
    /// A source MAC already learned on another port.
    case spoofedSource = "spoofed-source"
    /// A new source MAC on a port that has `maximumMACsPerPort` already.
    case macLimit = "mac-limit"
    /// A unicast destination no port has used as a source.
    case unknownUnicast = "unknown-unicast"
    /// Broadcast or multicast beyond the port's allowance (`broadcastRate`, `broadcastBurst`).
    case broadcastStorm = "broadcast-storm"
    /// A frame longer than the port it was switched to can take (a plain
    /// guest's MTU): dropped for that port, never sent to make it reconnect.
    case oversizedFrame = "oversized-frame"
    /// An offloading guest's frame whose virtio-net header does not parse,
    /// or a superframe that cannot be cut in software (segments under
    /// `SoftwareOffload.minimumSegmentSize`, not TCP/IPv4), or segments
    /// beyond what one batch may produce.
    case badOffload = "bad-offload"
    /// An EtherType the gateway does not serve (it is still switched between guests).
    case unknownEtherType = "unknown-ethertype"
    /// An IPv4 header that does not parse (truncated, lying lengths, bad version).
    case malformedIPv4 = "malformed-ipv4"
    case badChecksum = "bad-checksum"
    /// IPv4 options in a packet for the gateway.
    case ipOptions = "ip-options"
    /// An IPv4 fragment for the gateway's own services, or one the NAT could
    /// not reassemble (overlapping, too large, or never completed).
    case fragment
    case malformedARP = "malformed-arp"
    /// ARP for an address the gateway does not own.
    case arpNotForUs = "arp-not-for-us"
    case malformedICMP = "malformed-icmp"
    case malformedDHCP = "malformed-dhcp"
    /// A DHCP message the server did not answer.
    case dhcpIgnored = "dhcp-ignored"
    /// Traffic for an address nothing routes to (another guest's address via
    /// the gateway, 0.0.0.0/8, multicast or broadcast beyond the subnet).
    case noRoute = "no-route"
    /// An IPv4 source or ARP sender address the port may not use: outside
    /// the subnet, the gateway's, bound to another port or client, 0.0.0.0
    /// beyond DHCP, or one more than the port's bindings allow.
    case spoofedAddress = "spoofed-address"
    /// A packet for the host's loopback not through a NAT translation.
    case loopbackDestination = "loopback-destination"
    /// A packet for one of the host's own interface addresses, without
    /// `--allow-host-addresses`.
    case hostAddress = "host-address"
    /// A packet for 169.254.0.0/16 without `--allow-link-local`.
    case linkLocalDestination = "link-local-destination"
    /// A new flow beyond `--max-flows`; TCP gets an RST.
    case flowLimit = "flow-limit"
    /// A new flow from a guest that holds `--max-flows-per-guest` of them
    /// already; TCP gets an RST.
    case guestFlowLimit = "guest-flow-limit"
    /// A TCP segment for a flow of the same address but another guest's MAC
    /// (a port that took over the address of a guest that left); answered
    /// with an RST, the flow untouched.
    case flowOwner = "flow-owner"
    /// The host could not open a socket for a new flow (descriptors exhausted, say).
    case hostSocket = "host-socket"
    /// A TCP segment for no flow (answered with an RST) or a UDP datagram for no forward.
    case noFlow = "no-flow"
    /// ICMP echo while the host does not allow unprivileged ping sockets.
    case pingNotPermitted = "ping-not-permitted"
    /// A service on the gateway that is not there (a closed port).
    case noService = "no-service"
    /// A router advertisement or redirect from a guest: only the gateway
    /// routes, so these are never switched to other guests.
    case guestRouterMessage = "guest-router-message"
    /// An IPv6 packet or ICMPv6 message that does not parse, fails its
    /// checksum, or is neighbour discovery with a hop limit below 255.
    case malformedIPv6 = "malformed-ipv6"
}

/// Frames and bytes through one switch port.
public struct PortCounters: Sendable, Equatable, Codable {
    public var framesIn = 0
    public var bytesIn = 0
    public var framesOut = 0
    public var bytesOut = 0

    mutating func add(_ other: PortCounters) {
        framesIn += other.framesIn
        bytesIn += other.bytesIn
        framesOut += other.framesOut
        bytesOut += other.bytesOut
    }
}

/// Everything the virtual network counts.
public struct NetworkCounters: Sendable, Equatable {
    /// The live ports' traffic.
    public var ports: [Int: PortCounters] = [:]
    /// The traffic of every port that has gone, together, so the table
    /// stays as large as the ports that are connected.
    public var departedPorts = PortCounters()
    public var departedPortCount = 0
    public var drops: [DropReason: Int] = [:]
    public var arpReplies = 0
    public var echoReplies = 0
    public var dhcp: [String: Int] = [:]
    /// DHCPv6 messages from clients, by type.
    public var dhcpv6: [String: Int] = [:]

    mutating func drop(_ reason: DropReason) {
        drops[reason, default: 0] += 1
    }
}
