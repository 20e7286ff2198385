import SovnetCore
import SovnetLink

/// What `sovnet proxy` is told on its command line.
public struct ProxyOptions: Sendable {
    /// `-listen`: endpoints accepting any number of `vm` guests.
    public var listen: [Endpoint]
    /// `-listen-qemu`, `-listen-bess`, `-listen-vfkit`, `-listen-stdio`: one guest each.
    public var singleGuest: [(Endpoint, Framing)]
    public var network: VirtualNetworkConfiguration
    /// Exit when a single-guest listener's guest disconnects (gvproxy's behaviour).
    public var exitOnDisconnect: Bool
    public var socketMode: UInt32
    public var pcapPath: String?
    public var pcapFilter: String?
    public var pidFile: String?
    public var debug: Bool

    public init(listen: [Endpoint], singleGuest: [(Endpoint, Framing)], network: VirtualNetworkConfiguration,
                exitOnDisconnect: Bool, socketMode: UInt32, pcapPath: String?, pcapFilter: String?, pidFile: String?,
                debug: Bool) {
        self.listen = listen
        self.singleGuest = singleGuest
        self.network = network
        self.exitOnDisconnect = exitOnDisconnect
        self.socketMode = socketMode
        self.pcapPath = pcapPath
        self.pcapFilter = pcapFilter
        self.pidFile = pidFile
        self.debug = debug
    }

    /// The largest frame: the MTU, an Ethernet header and one VLAN tag.
    public var maximumFrameLength: Int { min(network.mtu + 18, 65535) }
}
