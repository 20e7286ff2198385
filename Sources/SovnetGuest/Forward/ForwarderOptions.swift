import SovnetLink
import SovnetWire

/// Everything `sovnet forward` is told on its command line.
public struct ForwarderOptions: Sendable {
    public var endpoint: Endpoint
    public var framing: Framing
    public var interface: String
    public var mac: MACAddress
    public var mtu: Int
    /// Attach to an existing, configured tap and change nothing about it.
    public var preexisting: Bool
    /// Exit successfully at once if one of these interfaces exists.
    public var stopIfExist: [String]
    /// Where DNS settings go; nil to leave resolv.conf alone.
    public var resolvConf: String?
    /// A fixed configuration instead of DHCP.
    public var staticAddress: StaticAddress?
    public var hostName: String?
    public var pcapPath: String?
    public var pcapFilter: String?
    /// Log every frame.
    public var debug: Bool
    /// Ask the host for offloads (`OffloadLink`): open the tap with
    /// virtio-net headers and pass TCP superframes through when granted.
    public var offload = true
    /// How long the loop keeps polling after work before it sleeps (`BusyPoll`); zero: never.
    public var busyPoll = BusyPoll.defaultWindow

    /// `--static ADDR/PREFIX --gateway IP [--dns IP]`.
    public struct StaticAddress: Sendable {
        public var address: IPv4Address
        public var prefixLength: Int
        public var gateway: IPv4Address
        public var dns: [IPv4Address]

        public init(address: IPv4Address, prefixLength: Int, gateway: IPv4Address, dns: [IPv4Address]) {
            self.address = address
            self.prefixLength = prefixLength
            self.gateway = gateway
            self.dns = dns
        }
    }

    public init(endpoint: Endpoint, framing: Framing, interface: String, mac: MACAddress, mtu: Int,
                preexisting: Bool, stopIfExist: [String], resolvConf: String?, staticAddress: StaticAddress?,
                hostName: String?, pcapPath: String?, pcapFilter: String?, debug: Bool) {
        self.endpoint = endpoint
        self.framing = framing
        self.interface = interface
        self.mac = mac
        self.mtu = mtu
        self.preexisting = preexisting
        self.stopIfExist = stopIfExist
        self.resolvConf = resolvConf
        self.staticAddress = staticAddress
        self.hostName = hostName
        self.pcapPath = pcapPath
        self.pcapFilter = pcapFilter
        self.debug = debug
    }

    /// The largest frame: the MTU, an Ethernet header and one VLAN tag.
    public var maximumFrameLength: Int { min(mtu + 18, 65535) }
}
