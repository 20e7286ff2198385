// Echo requests from the gateway to a guest, for reachability checks
// (`sovnet up`, `sovnet check`): the gateway sends an ICMP echo request
// (RFC 792), or an ICMPv6 one (RFC 4443) to an IPv6 guest, to the guest's
// link, found as any frame to it is, and keeps the replies that carry an
// identifier it used. The driver stamps the send time
// and reads the replies with their arrival time; replies with identifiers
// the gateway never used are dropped as before (`no-service`).
import SovnetWire

/// An echo reply a guest sent to one of the gateway's requests.
public struct GatewayEchoReply: Equatable, Sendable {
    public var source: IPAddress
    public var identifier: UInt16
    public var sequence: UInt16
    public var received: ContinuousClock.Instant
}

extension VirtualNetwork {
    /// An echo request from the gateway to `address` with a 56-byte body (as
    /// `ping`'s), or nil when no guest on the network has that address. An
    /// IPv6 one comes from the gateway's address of the same scope.
    public func echoRequest(to address: IPAddress, identifier: UInt16, sequence: UInt16) -> Delivery? {
        guard let link = neighbor(address) else { return nil }
        echoIdentifiers.insert(identifier)
        var out: [UInt8] = []
        out.reserveCapacity(14 + 40 + 8 + 56)
        let body = (0..<56).map { UInt8(truncatingIfNeeded: $0) }
        switch address {
        case .v4(let address):
            EthernetHeader(destination: link.mac, source: configuration.gatewayMAC, etherType: .ipv4).emit(into: &out)
            IPv4Header(source: configuration.gatewayAddress, destination: address, protocol: .icmp,
                       payloadLength: 8 + body.count, ttl: 64, identification: nextIdentification()).emit(into: &out)
            ICMPv4Header.echo(.echoRequest, identifier: identifier, sequence: sequence).emit(body: body, into: &out)
        case .v6(let address):
            let source = address.isLinkLocal ? configuration.gatewayLinkLocal : configuration.gatewayIPv6
            EthernetHeader(destination: link.mac, source: configuration.gatewayMAC, etherType: .ipv6).emit(into: &out)
            IPv6Header(source: source, destination: address, nextHeader: .icmpv6, payloadLength: 8 + body.count).emit(into: &out)
            body.withUnsafeBytes {
                ICMPv6View.emit(type: .echoRequest, header: UInt32(identifier) << 16 | UInt32(sequence), body: $0,
                                source: source, destination: address, into: &out)
            }
        }
        count(out: out.count, to: link.port)
        return .send(out, to: link.port)
    }

    /// Keeps an echo reply to one of the gateway's requests; false when it is none.
    func keepEchoReply(from source: IPAddress, identifier: UInt16, sequence: UInt16, now: ContinuousClock.Instant) -> Bool {
        guard echoIdentifiers.contains(identifier) else { return false }
        if echoReplies.count < 4096 {
            echoReplies.append(GatewayEchoReply(source: source, identifier: identifier, sequence: sequence, received: now))
        }
        return true
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
