import SovnetCore
import SovnetLink
import SovnetWire

/// What `sovnet proxy` is told on its command line.
public struct ProxyOptions: Sendable {
    /// `-listen`: endpoints accepting any number of `vm` guests.
    public var listen: [Endpoint]
    /// `--listen-serial`: unix sockets hypervisors connect to with a guest's serial line.
    public var listenSerial: [Endpoint] = []
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
    /// Resolvers that non-local DNS queries are forwarded to, in order.
    public var dnsUpstreams: [ResolverAddress]
    /// The host's resolv.conf, followed as it changes (`ResolvConfWatcher`):
    /// the resolvers come from it when `dnsUpstreams` is empty, and its search
    /// domains go to guests with `hostSearchDomains`.
    public var resolvConf: String?
    /// Give guests the host's search domains (DHCP option 119), following `resolvConf`.
    public var hostSearchDomains = false
    /// Endpoints serving only the control API (gvproxy's `-services`).
    public var services: [Endpoint] = []
    /// Address translation, flow limits and port forwards.
    public var nat = NATConfiguration()
    /// What guests may do with port forwards through the gateway's port 80.
    public var guestForwards = GuestForwardPolicy()
    /// Grant `sovnet forward`'s requests for offloads (`OffloadLink`).
    public var offload = true
    /// Stop on SIGTERM, SIGINT and SIGHUP; off when the proxy runs inside
    /// `sovnet up`, which handles signals itself and calls `Proxy.stop()`.
    public var handleSignals = true
    /// `-notification`: a unix socket path told of readiness and guests (`NotificationSender`).
    public var notificationSocket: String?
    /// Unix socket forwards over SSH to start with (`-forward-sock …`, the config file's `forwards:`).
    public var sshForwards: [SSHTunnelSpec] = []
    /// Verify the guests' SSH host keys against this known_hosts file instead of accepting them.
    public var sshKnownHosts: String?
    /// How long the loop keeps polling after work before it sleeps (`BusyPoll`); zero: never.
    public var busyPoll = BusyPoll.defaultWindow

    public init(listen: [Endpoint], singleGuest: [(Endpoint, Framing)], network: VirtualNetworkConfiguration,
                exitOnDisconnect: Bool, socketMode: UInt32, pcapPath: String?, pcapFilter: String?, pidFile: String?,
                debug: Bool, dnsUpstreams: [ResolverAddress]) {
        self.listen = listen
        self.singleGuest = singleGuest
        self.network = network
        self.exitOnDisconnect = exitOnDisconnect
        self.socketMode = socketMode
        self.pcapPath = pcapPath
        self.pcapFilter = pcapFilter
        self.pidFile = pidFile
        self.debug = debug
        self.dnsUpstreams = dnsUpstreams
        self.network.upstreamResolverCount = dnsUpstreams.count
    }

    /// The largest frame: the MTU, an Ethernet header and one VLAN tag.
    public var maximumFrameLength: Int { min(network.mtu + 18, 65535) }
}
