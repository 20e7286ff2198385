import SovnetWire

/// A flow as the guest sees it: its own address and port, and the remote
/// address and port it talks to (before NAT rewrites the remote), both of
/// one family. Integers only, so looking one up hashes no strings.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var guest: IPAddress
    public var guestPort: UInt16
    public var remote: IPAddress
    public var remotePort: UInt16

    public init(guest: IPAddress, guestPort: UInt16, remote: IPAddress, remotePort: UInt16) {
        self.guest = guest
        self.guestPort = guestPort
        self.remote = remote
        self.remotePort = remotePort
    }

    public var description: String { "\(guest.with(port: guestPort))-\(remote.with(port: remotePort))" }
}

/// Where a guest's frames go back to: the switch port and the guest's MAC,
/// and whether frames on that port carry virtio-net headers (`OffloadLink`).
public struct GuestLink: Hashable, Sendable {
    public var port: PortID
    public var mac: MACAddress
    public var offload: Bool

    public init(port: PortID, mac: MACAddress, offload: Bool = false) {
        self.port = port
        self.mac = mac
        self.offload = offload
    }
}
