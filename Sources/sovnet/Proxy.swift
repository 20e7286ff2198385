import ArgumentParser
import SovnetGuestCommands
import Glibc
import Logging
import SovnetCore
import SovnetDrivers
import SovnetLink
import SovnetWire

/// `sovnet proxy`, flag-compatible with gvproxy: each of gvproxy's flags is
/// accepted with one dash (`-listen`), as gvproxy spells them, or two.
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Host side: an unprivileged virtual network behind a socket (switch, DHCP, DNS, NAT, port forwards).",
        discussion: """
            Replaces gvproxy: listeners, the switch, the gateway's ARP, ICMP echo, DHCP server and DNS, \
            NAT of guest TCP, UDP and ICMP echo to host sockets, port forwards into guests, the HTTP API \
            and gvproxy's YAML configuration. See docs/proxy.md.
            """
    )

    @Option(name: [.customLong("listen", withSingleDash: true), .customLong("listen")],
            help: "Accept vm-framing guests (gvforwarder, sovnet forward): unix:///PATH, vsock://:PORT, tcp://IP:PORT.")
    var listen: [String] = []

    @Option(name: [.customLong("services", withSingleDash: true), .customLong("services")],
            help: "Serve only the HTTP control API here (unix:///PATH or tcp://IP:PORT); -listen serves it too.")
    var services: [String] = []

    @Option(name: [.customLong("listen-qemu", withSingleDash: true), .customLong("listen-qemu")],
            help: "Accept one guest with 4-byte framing (QEMU -netdev stream): unix:///PATH or tcp://IP:PORT.")
    var listenQemu: String?

    @Option(name: .customLong("listen-serial"),
            help: "Accept hypervisors carrying a guest's serial line (sovnet forward -url serial:///dev/hvc1): unix:///PATH.")
    var listenSerial: [String] = []

    @Option(name: [.customLong("listen-vpnkit", withSingleDash: true), .customLong("listen-vpnkit")],
            help: "HyperKit's VPNKit socket: refused, HyperKit runs only on macOS.")
    var listenVpnkit: String?

    @Option(name: [.customLong("listen-bess", withSingleDash: true), .customLong("listen-bess")],
            help: "Accept one guest over SOCK_SEQPACKET: unixpacket:///PATH.")
    var listenBess: String?

    @Option(name: [.customLong("listen-vfkit", withSingleDash: true), .customLong("listen-vfkit")],
            help: "Serve one guest over SOCK_DGRAM: unixgram:///PATH.")
    var listenVfkit: String?

    @Option(name: [.customLong("listen-stdio", withSingleDash: true), .customLong("listen-stdio")],
            help: "Serve one guest on standard input and output ('accept').")
    var listenStdio: String?

    @Option(name: [.customLong("config", withSingleDash: true), .customLong("config")],
            help: "A gvproxy YAML configuration file; flags given as well take precedence.", completion: .file())
    var config: String?

    @Option(name: [.customLong("mtu", withSingleDash: true), .customLong("mtu")],
            help: "MTU of the virtual network. (default: 1500)")
    var mtu: Int?

    @Option(name: [.customLong("subnet", withSingleDash: true), .customLong("subnet")],
            help: "The virtual network, as ADDRESS/PREFIX. (default: 192.168.127.0/24)")
    var subnet: String?

    @Option(name: [.customLong("gatewayIP", withSingleDash: true), .customLong("gatewayIP")],
            help: "The gateway's address (default: the subnet's first).")
    var gatewayIP: String?

    @Option(name: [.customLong("deviceIP", withSingleDash: true), .customLong("deviceIP")],
            help: "The guest's address: the static lease of 5a:94:ef:e4:0c:ee and -ssh-port's target (default: the subnet's .2).")
    var deviceIP: String?

    @Option(name: [.customLong("hostIP", withSingleDash: true), .customLong("hostIP")],
            help: "The host alias the gateway answers ARP for, named host.containers.internal (default: the subnet's .254).")
    var hostIP: String?

    @Flag(name: .customLong("no-ipv6"),
          help: "The gateway speaks no IPv6, as gvproxy: no router advertisements, DHCPv6, IPv6 DNS or IPv6 NAT (guests still reach each other over IPv6).")
    var noIPv6 = false

    @Flag(name: .customLong("dhcpv6-addresses"),
          help: "Hand out IPv6 addresses by DHCPv6 too (::1:0 to ::1:ffff of the prefix), and say so in router advertisements; DHCPv6 always serves DNS servers statelessly.")
    var dhcpv6Addresses = false

    @Option(name: .customLong("ipv6-prefix"),
            help: "The guests' IPv6 network, a /64 they take addresses in by SLAAC: the gateway is its ::1 and the host alias its ::254. (default: fd00::/64)")
    var ipv6Prefix: String?

    @Option(name: [.customLong("log-file", withSingleDash: true), .customLong("log-file")],
            help: "Append the log to this file instead of standard error.", completion: .file())
    var logFile: String?

    @Option(name: [.customLong("pcap", withSingleDash: true), .customLong("pcap")],
            help: "Capture every frame through the switch to this pcap file.", completion: .file())
    var pcap: String?

    @Option(name: .customLong("pcap-filter"), help: "Only capture frames matching this BPF expression.")
    var pcapFilter: String?

    @Option(name: [.customLong("pid-file", withSingleDash: true), .customLong("pid-file")],
            help: "Write the process ID to this file (removed on exit).", completion: .file())
    var pidFile: String?

    @Flag(name: [.customLong("debug", withSingleDash: true), .customLong("debug")], help: "Log every frame.")
    var debug = false

    @OptionGroup var logging: LoggingOptions

    @Option(name: [.customLong("notification", withSingleDash: true), .customLong("notification")],
            help: "Tell a supervisor listening on unix:///PATH of readiness and guests, in gvproxy's JSON messages.")
    var notification: String?

    @Flag(name: [.customLong("ec2-metadata-access", withSingleDash: true), .customLong("ec2-metadata-access")],
          help: "Let guests reach the cloud metadata service, 169.254.169.254, over TCP.")
    var ec2MetadataAccess = false

    @Flag(name: .customLong("expose-loopback-only"),
          help: "Bind port forwards to loopback only: ':PORT' means 127.0.0.1, not every host address as in gvproxy.")
    var exposeLoopbackOnly = false

    @Flag(name: [.customLong("version", withSingleDash: true)], help: "Print the version and exit.")
    var version = false

    @Flag(name: .customLong("exit-on-disconnect"),
          help: "Exit when the guest of a single-guest listener disconnects (gvproxy's behaviour).")
    var exitOnDisconnect = false

    @Option(name: .customLong("socket-mode"), help: "Mode of created unix sockets, in octal.")
    var socketMode = "0600"

    @Option(name: .customLong("lease-time"), help: "DHCP lease time in seconds (default: 3600, as gvproxy).")
    var leaseTime: UInt32?

    @Option(name: .customLong("dns-upstream"),
            help: "Resolver for names outside the local zones, IP[:PORT] or [IPv6]:PORT (repeatable; default: --resolv-conf's, followed as it changes).")
    var dnsUpstream: [String] = []

    @Option(name: .customLong("resolv-conf"),
            help: "The host's resolv.conf, followed as it is replaced or relinked: its resolvers (IPv4 and IPv6) and search domains.", completion: .file())
    var resolvConf = "/etc/resolv.conf"

    @Flag(name: .customLong("no-host-search-domains"),
          help: "Do not give guests the host's search domains (DHCP option 119), as gvproxy does by default.")
    var noHostSearchDomains = false

    @Option(name: [.customLong("ssh-port", withSingleDash: true), .customLong("ssh-port")], parsing: .unconditional,
            help: "Forward 127.0.0.1:PORT to the guest's SSH port, 192.168.127.2:22 by default; -1 turns it off.")
    var sshPort = 2222

    @Option(name: [.customLong("forward-sock", withSingleDash: true), .customLong("forward-sock")],
            help: "Forward this host unix socket into the guest over SSH (repeatable; paired by position with the three below).")
    var forwardSock: [String] = []

    @Option(name: [.customLong("forward-dest", withSingleDash: true), .customLong("forward-dest")],
            help: "The unix socket inside the guest that -forward-sock reaches.")
    var forwardDest: [String] = []

    @Option(name: [.customLong("forward-user", withSingleDash: true), .customLong("forward-user")],
            help: "The user -forward-sock logs in to the guest's sshd as.")
    var forwardUser: [String] = []

    @Option(name: [.customLong("forward-identity", withSingleDash: true), .customLong("forward-identity")],
            help: "The private key -forward-sock logs in with (ed25519, RSA, ECDSA; OpenSSH's ssh client reads it).", completion: .file())
    var forwardIdentity: [String] = []

    @Option(name: .customLong("forward-known-hosts"),
            help: "Verify the guest's SSH host key against this known_hosts file (by the guest's address) instead of accepting it as gvproxy does.", completion: .file())
    var forwardKnownHosts: String?

    @Option(name: .customLong("forward"),
            help: "A port forward into a guest: tcp:[IP]:PORT=GUEST_IP:PORT, udp:… or unix:/PATH=GUEST_IP:PORT (repeatable).")
    var forward: [String] = []

    @Option(name: .customLong("nat"),
            help: "Translate a virtual address to a host address, VIRTUAL=HOST, IPv4 or IPv6 (repeatable; default 192.168.127.254=127.0.0.1 and fd00::254=::1).")
    var nat: [String] = []

    @Flag(name: .customLong("no-offload"),
          help: "Refuse sovnet forward's requests for offloads (TCP superframes, checksums left to complete), as gvproxy does.")
    var noOffload = false

    @Option(name: .customLong("busy-poll"),
            help: ArgumentHelp("How long the loop keeps polling after work before it sleeps, 0 to 10000; 0: never.",
                               valueName: "microseconds"))
    var busyPoll = BusyPoll.defaultMicroseconds

    @Flag(name: .customLong("allow-link-local"), help: "Let guests reach 169.254.0.0/16 on the host's network.")
    var allowLinkLocal = false

    /// Acted on in `Sovnet.main`, before any thread starts (see there).
    @Flag(name: .customLong("drop-capabilities"),
          help: "Keep only CAP_NET_BIND_SERVICE and set no_new_privs (for a proxy started as root).")
    var dropCapabilities = false

    @Flag(name: .customLong("allow-host-addresses"),
          help: "Let guests reach the host's own interface addresses directly, not only through --nat translations.")
    var allowHostAddresses = false

    @Option(name: .customLong("max-flows"), help: "Most NATed flows per protocol; new TCP flows past it get an RST.")
    var maxFlows = 16_384

    @Option(name: .customLong("max-flows-per-guest"),
            help: "Most NATed flows per protocol that one guest may open; past it as past --max-flows.")
    var maxFlowsPerGuest = 4096

    @Option(name: .customLong("max-leases-per-guest"),
            help: "DHCP bindings (offers, leases and addresses used without asking) one guest connection may hold. (default: 16)")
    var maxLeasesPerGuest = 16

    @Option(name: .customLong("max-macs-per-guest"),
            help: "Source MACs one guest connection may use (containers bridged in a guest each have one). (default: 256)")
    var maxMACsPerGuest = 256

    @Flag(name: .customLong("no-guest-api"),
          help: "Do not serve /services/forwarder/ to guests at the gateway's port 80 (gvproxy does).")
    var noGuestAPI = false

    @Option(name: .customLong("guest-forwards"),
            help: "Port forwards one guest may open through the gateway's port 80, into its own address only. (default: 8)")
    var guestForwards = 8

    @Option(name: .customLong("guest-socket-dir"),
            help: "The directory under which guests may create unix socket forwards (none without it).", completion: .directory)
    var guestSocketDir: String?

    @Option(name: .customLong("flow-idle-timeout"), help: "Seconds a UDP or ICMP echo flow lives without traffic. (default: 60)")
    var flowIdleTimeout = 60

    /// Checks the flags' values. Called from `run`, not as ArgumentParser's
    /// `validate`, which runs before an unknown flag is reported: an unknown
    /// flag must be the first thing a user hears of.
    func check() throws {
        if !(sshPort == -1 || (1...65535).contains(sshPort)) { throw ValidationError("-ssh-port must be a port or -1") }
        if maxFlows < 1 { throw ValidationError("--max-flows must be at least 1") }
        if maxFlowsPerGuest < 1 { throw ValidationError("--max-flows-per-guest must be at least 1") }
        if guestForwards < 0 { throw ValidationError("--guest-forwards must be 0 or more") }
        if maxLeasesPerGuest < 1 { throw ValidationError("--max-leases-per-guest must be at least 1") }
        if maxMACsPerGuest < 1 { throw ValidationError("--max-macs-per-guest must be at least 1") }
        if flowIdleTimeout < 1 { throw ValidationError("--flow-idle-timeout must be at least 1 second") }
        if listenVpnkit != nil {
            throw ValidationError("-listen-vpnkit: HyperKit's VPNKit protocol is not supported (HyperKit runs only on macOS); use -listen-qemu, -listen-vfkit or -listen")
        }
        let counts = [forwardSock.count, forwardDest.count, forwardUser.count, forwardIdentity.count]
        if Set(counts).count > 1 {
            throw ValidationError("-forward-sock, -forward-dest, -forward-user and -forward-identity must all be given together, the same number of times, or not at all")
        }
        if let notification, !notification.hasPrefix("unix://") {
            throw ValidationError("-notification must be a unix:// address, not '\(notification)'")
        }
        if let mtu, !(576...65521).contains(mtu) { throw ValidationError("-mtu must be between 576 and 65521 (a frame must fit the 16-bit framing)") }
        guard UInt32(socketMode, radix: 8) != nil else { throw ValidationError("--socket-mode wants an octal mode") }
        if let listenStdio, listenStdio != "accept" { throw ValidationError("-listen-stdio takes 'accept'") }
        if let leaseTime, leaseTime < 10 { throw ValidationError("--lease-time must be at least 10 seconds") }
        if !BusyPoll.allowedMicroseconds.contains(busyPoll) { throw ValidationError("--busy-poll must be 0 to 10000 microseconds") }
    }

    /// The virtual network: gvproxy's defaults, then the -config file, then
    /// -subnet, -gatewayIP, -deviceIP, -hostIP and -mtu.
    func networkConfiguration(file: GvproxyConfiguration?) throws -> VirtualNetworkConfiguration {
        var configuration = VirtualNetworkConfiguration()
        file?.apply(to: &configuration)
        if let mtu { configuration.mtu = mtu }
        if let leaseTime { configuration.leaseTime = leaseTime }
        configuration.maximumLeasesPerPort = maxLeasesPerGuest
        configuration.maximumMACsPerPort = maxMACsPerGuest
        let prefix: Int
        let network: IPv4Address
        if let subnet {
            let parts = subnet.split(separator: "/")
            guard parts.count == 2, let base = IPv4Address(parts[0]), let length = Int(parts[1]), (8...29).contains(length) else {
                throw ValidationError("-subnet wants ADDRESS/PREFIX with a prefix from 8 to 29, not '\(subnet)'")
            }
            prefix = length
            network = base.masked(prefixLength: length)
            configuration.prefixLength = prefix
            configuration.gatewayAddress = IPv4Address(rawValue: network.rawValue + 1)
            let last = IPv4Address(rawValue: (network.rawValue | ~IPv4Address.mask(prefixLength: prefix).rawValue) - 1)
            configuration.hostAddress = last
            configuration.virtualAddresses = [last]
            if file?.staticLeases == nil {
                configuration.staticBindings = configuration.staticBindings.mapValues { _ in IPv4Address(rawValue: network.rawValue + 2) }
            }
        } else {
            prefix = configuration.prefixLength
            network = configuration.network
        }
        func address(_ text: String?, _ flag: String) throws -> IPv4Address? {
            guard let text else { return nil }
            guard let value = IPv4Address(text), value.masked(prefixLength: prefix) == network else {
                throw ValidationError("\(flag) must be an address in \(network)/\(prefix), not '\(text)'")
            }
            return value
        }
        if let gateway = try address(gatewayIP, "-gatewayIP") { configuration.gatewayAddress = gateway }
        if let host = try address(hostIP, "-hostIP") {
            configuration.hostAddress = host
            configuration.virtualAddresses = [host]
        }
        if let device = try address(deviceIP, "-deviceIP") {
            configuration.staticBindings = configuration.staticBindings.mapValues { _ in device }
        }
        if dhcpv6Addresses { configuration.dhcpv6Pool = VirtualNetworkConfiguration.defaultDHCPv6Pool }
        if noIPv6 { configuration.ipv6 = false }
        if let ipv6Prefix {
            guard let network = VirtualNetworkConfiguration.ipv6Network(ipv6Prefix) else {
                throw ValidationError("--ipv6-prefix wants a unicast /64 such as fd00::/64, not '\(ipv6Prefix)'")
            }
            configuration.useIPv6Network(network)
        }
        return configuration
    }

    /// The NAT: gvproxy's translation of the host alias to 127.0.0.1, the
    /// -ssh-port forward, then the -config file's `nat` and `forwards`, then flags.
    func natConfiguration(file: GvproxyConfiguration?, network: VirtualNetworkConfiguration) throws -> NATConfiguration {
        var configuration = NATConfiguration()
        configuration.policy = NATPolicy(translations: [.v4(network.hostAddress): .v4(IPv4Address(127, 0, 0, 1)),
                                                        .v6(network.ipv6HostAddress): .v6(.loopback)],
                                         allowLinkLocal: allowLinkLocal, allowHostAddresses: allowHostAddresses)
        configuration.maximumFlows = maxFlows
        configuration.maximumFlowsPerGuest = maxFlowsPerGuest
        configuration.idleTimeout = .seconds(flowIdleTimeout)
        configuration.exposeLoopbackOnly = exposeLoopbackOnly
        do {
            if sshPort != -1 {
                let guest = network.staticBindings.values.min() ?? IPv4Address(rawValue: network.network.rawValue + 2)
                configuration.forwards.append(try PortForward(kind: .tcp, local: "127.0.0.1:\(sshPort)", remote: "\(guest):22"))
            }
            file?.apply(to: &configuration)
            if ec2MetadataAccess { configuration.policy.allowMetadataService = true }
            for text in nat {
                let parts = text.split(separator: "=")
                guard parts.count == 2, let virtual = IPAddress(parts[0]), let host = IPAddress(parts[1]) else {
                    throw ValidationError("--nat wants VIRTUAL=HOST addresses, not '\(text)'")
                }
                configuration.policy.translations[virtual] = host
            }
            for text in forward {
                let parsed = try PortForward.parse(text)
                configuration.forwards.removeAll { $0.kind == parsed.kind && $0.local == parsed.local }
                configuration.forwards.append(parsed)
            }
        } catch let error as PortForwardError {
            throw ValidationError(error.description)
        }
        return configuration
    }

    /// The unix socket forwards over SSH: the config file's `forwards:`, then
    /// the -forward-* flags, each to the guest's sshd at the device address.
    func sshForwards(file: GvproxyConfiguration?, network: VirtualNetworkConfiguration) throws -> [SSHTunnelSpec] {
        let guest = network.staticBindings.values.min() ?? IPv4Address(rawValue: network.network.rawValue + 2)
        let requested = (file?.sshForwards ?? []).map { ($0.socket, $0.dest, $0.user, $0.identity) }
            + forwardSock.indices.map { (forwardSock[$0], forwardDest[$0], forwardUser[$0], forwardIdentity[$0]) }
        return try requested.map { socket, dest, user, identity in
            guard access(identity, F_OK) == 0 else {
                throw RuntimeFailure("identity file \(identity) can't be loaded: \(String(cString: strerror(errno)))")
            }
            let path = socket.hasPrefix("unix://") ? String(socket.dropFirst("unix://".count)) : socket
            guard path.hasPrefix("/"), dest.hasPrefix("/") else {
                throw ValidationError("-forward-sock and -forward-dest want absolute socket paths, not '\(socket)' and '\(dest)'")
            }
            return SSHTunnelSpec(socket: path, user: user, address: guest, destination: dest, identity: identity)
        }
    }

    /// Reads the -config file, if one is given.
    func readConfiguration() throws -> GvproxyConfiguration? {
        guard let config else { return nil }
        let text = try readTextFile(config, what: "-config")
        do {
            let file = try GvproxyConfiguration.parse(text)
            if file.interfaces.vpnkit != nil {
                throw RuntimeFailure("\(config): interfaces.vpnkit: HyperKit's VPNKit protocol is not supported (HyperKit runs only on macOS)")
            }
            return file
        } catch let problem as ConfigurationProblem {
            throw RuntimeFailure("\(config): \(problem)")
        }
    }

    func run() throws {
        try Self.reportingUsage(runChecked)
    }

    private func runChecked() throws {
        if version {
            print("sovnet proxy version \(Sovnet.version) (gvproxy-compatible)")
            return
        }
        try check()
        let file = try readConfiguration()
        let logFile = self.logFile ?? file?.logFile
        if let logFile {
            let fd = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw RuntimeFailure("cannot open -log-file \(logFile): \(String(cString: strerror(errno)))") }
            dup2(fd, 2)
            close(fd)
        }
        let debug = self.debug || file?.debug == true || file?.logLevel == .debug || file?.logLevel == .trace
        try logging.bootstrap(default: self.debug ? .debug : file?.logLevel ?? (debug ? .debug : .info))
        func endpoint(_ url: String) throws -> Endpoint {
            do {
                return try Endpoint(url: url)
            } catch {
                throw ValidationError(error.description)
            }
        }
        let interfaces = file?.interfaces
        var single: [(Endpoint, Framing)] = []
        if let qemu = listenQemu ?? interfaces?.qemu { single.append((try endpoint(qemu), .qemu)) }
        if let bess = listenBess ?? interfaces?.bess { single.append((try endpoint(bess), .bess)) }
        if let vfkit = listenVfkit ?? interfaces?.vfkit { single.append((try endpoint(vfkit), .vfkit)) }
        if let stdio = listenStdio ?? interfaces?.stdio {
            guard stdio == "accept" else { throw ValidationError("-listen-stdio takes 'accept'") }
            single.append((.stdio, .stdio))
        }
        let listen = self.listen.isEmpty ? file?.listen ?? [] : self.listen
        let services = self.services.isEmpty ? file?.services.map { [$0] } ?? [] : self.services
        if listen.isEmpty, listenSerial.isEmpty, single.isEmpty, services.isEmpty {
            throw ValidationError("nothing to listen on: give -listen, --listen-serial, -listen-qemu, -listen-bess, -listen-vfkit or -listen-stdio")
        }
        let upstreams = try dnsUpstream.map { text in
            guard let address = ResolverAddress(text) else {
                throw ValidationError("--dns-upstream wants IP[:PORT] or [IPv6]:PORT, not '\(text)'")
            }
            return address
        }
        let network = try networkConfiguration(file: file)
        var options = ProxyOptions(
            listen: try listen.map(endpoint), singleGuest: single, network: network,
            exitOnDisconnect: exitOnDisconnect, socketMode: UInt32(socketMode, radix: 8) ?? 0o600,
            pcapPath: pcap ?? file?.captureFile, pcapFilter: pcapFilter, pidFile: pidFile ?? file?.pidFile, debug: debug,
            dnsUpstreams: upstreams)
        options.services = try services.map(endpoint)
        options.listenSerial = try listenSerial.map(endpoint)
        options.offload = !noOffload
        options.busyPoll = .microseconds(busyPoll)
        options.nat = try natConfiguration(file: file, network: network)
        options.nat.guestAPI = !noGuestAPI
        options.guestForwards.maximumForwardsPerGuest = guestForwards
        options.guestForwards.socketDirectory = guestSocketDir
        options.sshForwards = try sshForwards(file: file, network: network)
        options.sshKnownHosts = forwardKnownHosts
        options.hostSearchDomains = file?.searchDomains == nil && !noHostSearchDomains
        if dnsUpstream.isEmpty || options.hostSearchDomains { options.resolvConf = resolvConf }
        if let notification = notification ?? file?.notification {
            guard notification.hasPrefix("unix://") else {
                throw ValidationError("notification must be a unix:// address, not '\(notification)'")
            }
            options.notificationSocket = String(notification.dropFirst("unix://".count))
        }
        let status = try Proxy(options: options, logger: Logger(label: "sovnet.proxy")).run()
        if status != 0 { throw ExitCode(status) }
    }
}
