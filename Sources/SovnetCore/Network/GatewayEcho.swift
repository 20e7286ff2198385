// Echo requests from the gateway to a guest, for reachability checks
// (`sovnet up`, `sovnet check`): the gateway sends an ICMP echo request
// (RFC 792) to the guest's link, found as any frame to it is, and keeps the
// replies that carry an identifier it used. The driver stamps the send time
// and reads the replies with their arrival time; replies with identifiers
// the gateway never used are dropped as before (`no-service`).
import SovnetWire

/// An echo reply a guest sent to one of the gateway's requests.
public struct GatewayEchoReply: Equatable, Sendable {
    public var source: IPv4Address
    public var identifier: UInt16
    public var sequence: UInt16
    public var received: ContinuousClock.Instant
}

extension VirtualNetwork {
    /// An echo request from the gateway to `address` with a 56-byte body (as
    /// `ping`'s), or nil when no guest on the network has that address.
    public func echoRequest(to address: IPv4Address, identifier: UInt16, sequence: UInt16) -> Delivery? {
        guard let link = neighbor(address) else { return nil }
        echoIdentifiers.insert(identifier)
        var out: [UInt8] = []
        out.reserveCapacity(14 + 20 + 8 + 56)
        EthernetHeader(destination: link.mac, source: configuration.gatewayMAC, etherType: .ipv4).emit(into: &out)
        let body = (0..<56).map { UInt8(truncatingIfNeeded: $0) }
        IPv4Header(source: configuration.gatewayAddress, destination: address, protocol: .icmp,
                   payloadLength: 8 + body.count, ttl: 64, identification: nextIdentification()).emit(into: &out)
        ICMPv4Header.echo(.echoRequest, identifier: identifier, sequence: sequence).emit(body: body, into: &out)
        count(out: out.count, to: link.port)
        return .send(out, to: link.port)
    }

    /// Stops keeping replies for `identifier` and returns those not yet taken.
    public func endEcho(identifier: UInt16) -> [GatewayEchoReply] {
        echoIdentifiers.remove(identifier)
        return takeEchoReplies(identifier: identifier)
    }

    /// The replies received so far for `identifier`, removed from the list.
    public func takeEchoReplies(identifier: UInt16) -> [GatewayEchoReply] {
        let taken = echoReplies.filter { $0.identifier == identifier }
        echoReplies.removeAll { $0.identifier == identifier }
        return taken
    }
}
