// What `sovnet up` launches and checks, from `sovnet.yaml` (or `--config`)
// with command-line flags on top. Every key is optional:
//
//   name: sovnet                 # names the run directory and the netns
//   guest:
//     kind: netns                # netns (default) | qemu | crosvm
//     mac: 5a:94:ef:e4:0c:ee     # the guest's MAC (the lease is looked up by it)
//     services:                  # netns: commands run inside the namespace
//       - python3 -m http.server 8080
//     binary: crosvm             # qemu/crosvm: the hypervisor (default by kind)
//     kernel: /path/vmlinuz
//     initrd: /path/initrd.img   # qemu
//     disk: /path/rootfs.img     # root block device
//     memory: 1024               # MiB
//     cpus: 2
//     console: hvc0              # hvc0 (virtio console, default) | ttyS0
//     transport: serial          # how the guest's network reaches the proxy:
//                                # qemu: virtio-net (default) | serial;
//                                # crosvm: vsock (default) | serial (a second
//                                # virtio console port, hvc1, for sovnet forward
//                                # -url serial:///dev/hvc1)
//     params: init=/sbin/sovnet-init   # kernel parameters after console=
//     cid: 3                     # crosvm: the guest's vsock CID
//     accel: auto                # qemu: auto | kvm | tcg
//     stop-timeout: 20           # seconds the guest has to power off after its
//                                # power button (QMP system_powerdown, crosvm
//                                # powerbtn) before it is stopped harder
//     kernel-config: /path/config      # preflight: the guest kernel's .config
//   proxy:                       # an already running proxy instead of one in-process
//     api: unix:///run/sovnet/api.sock       # its --services endpoint
//     listen: unix:///run/sovnet/vm.sock     # netns: its -listen; qemu: its -listen-qemu
//   checks:
//     lease-timeout: 30          # seconds
//     ping: 3                    # echo requests from the gateway (0: none)
//     tcp: [22, 8080]            # ports that must accept a connection
//     tailscale:
//       localapi: /run/sovnet/tailscaled.sock   # the guest's LocalAPI, forwarded
//       status-command: [ssh, guest, tailscale, status, --json]
//       host-ping: auto          # auto | true | false: `tailscale ping` from this host
import Glibc
import SovnetLink
import SovnetWire
import Yams

/// Everything `sovnet up` needs to know.
public struct LaunchConfiguration: Codable, Sendable, Equatable {
    public var name: String = "sovnet"
    public var guest = Guest()
    public var proxy: ExistingProxy?
    public var checks = Checks()

    /// The three kinds of guest.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case netns, qemu, crosvm
    }

    public struct Guest: Codable, Sendable, Equatable {
        public var kind: Kind = .netns
        public var mac: String?
        public var services: [String]?
        public var binary: String?
        public var kernel: String?
        public var initrd: String?
        public var disk: String?
        public var memory: Int?
        public var cpus: Int?
        public var console: String?
        public var transport: Transport?
        public var params: String?
        public var cid: UInt32?
        public var accel: String?
        public var kernelConfig: String?
        public var stopTimeout: Int?

        enum CodingKeys: String, CodingKey {
            case kind, mac, services, binary, kernel, initrd, disk, memory, cpus, console, transport, params, cid, accel
            case kernelConfig = "kernel-config"
            case stopTimeout = "stop-timeout"
        }

        public init() {}

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            kind = try container.decodeIfPresent(Kind.self, forKey: .kind) ?? .netns
            mac = try container.decodeIfPresent(String.self, forKey: .mac)
            services = try container.decodeIfPresent([String].self, forKey: .services)
            binary = try container.decodeIfPresent(String.self, forKey: .binary)
            kernel = try container.decodeIfPresent(String.self, forKey: .kernel)
            initrd = try container.decodeIfPresent(String.self, forKey: .initrd)
            disk = try container.decodeIfPresent(String.self, forKey: .disk)
            memory = try container.decodeIfPresent(Int.self, forKey: .memory)
            cpus = try container.decodeIfPresent(Int.self, forKey: .cpus)
            console = try container.decodeIfPresent(String.self, forKey: .console)
            transport = try container.decodeIfPresent(Transport.self, forKey: .transport)
            params = try container.decodeIfPresent(String.self, forKey: .params)
            cid = try container.decodeIfPresent(UInt32.self, forKey: .cid)
            accel = try container.decodeIfPresent(String.self, forKey: .accel)
            kernelConfig = try container.decodeIfPresent(String.self, forKey: .kernelConfig)
            stopTimeout = try container.decodeIfPresent(Int.self, forKey: .stopTimeout)
        }
    }

    /// How a hypervisor guest's frames reach the proxy.
    public enum Transport: String, Codable, Sendable, CaseIterable {
        /// QEMU's virtio-net on `-netdev stream` (qemu framing); the guest's own DHCP client.
        case virtioNet = "virtio-net"
        /// vsock, for `sovnet forward -url vsock://2:1024/connect` (crosvm).
        case vsock
        /// A virtio console port (hvc1) carrying the `vm` framing, for
        /// `sovnet forward -url serial:///dev/hvc1`: for hypervisors without vsock.
        case serial
    }

    public struct ExistingProxy: Codable, Sendable, Equatable {
        /// The control API of a running `sovnet proxy` (its `--services` endpoint).
        public var api: String
        /// Where the guest connects: the proxy's `-listen` (netns, `vm`
        /// framing) or `-listen-qemu` (qemu) unix socket. crosvm guests reach
        /// the proxy over vsock themselves.
        public var listen: String?

        public init(api: String, listen: String? = nil) {
            self.api = api
            self.listen = listen
        }
    }

    public struct Checks: Codable, Sendable, Equatable {
        public var leaseTimeout: Int?
        public var ping: Int?
        public var tcp: [UInt16]?
        public var tailscale: Tailscale?

        enum CodingKeys: String, CodingKey {
            case leaseTimeout = "lease-timeout"
            case ping, tcp, tailscale
        }

        public init() {}
    }

    public struct Tailscale: Codable, Sendable, Equatable {
        public var localapi: String?
        public var statusCommand: [String]?
        public var hostPing: String?

        enum CodingKeys: String, CodingKey {
            case localapi
            case statusCommand = "status-command"
            case hostPing = "host-ping"
        }

        public init(localapi: String? = nil, statusCommand: [String]? = nil, hostPing: String? = nil) {
            self.localapi = localapi
            self.statusCommand = statusCommand
            self.hostPing = hostPing
        }
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case name, guest, proxy, checks
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? "sovnet"
        guest = try container.decodeIfPresent(Guest.self, forKey: .guest) ?? Guest()
        proxy = try container.decodeIfPresent(ExistingProxy.self, forKey: .proxy)
        checks = try container.decodeIfPresent(Checks.self, forKey: .checks) ?? Checks()
    }

    /// A configuration problem, naming the key.
    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// Parses `sovnet.yaml` text and checks its values.
    public static func parse(_ text: String) throws(Problem) -> LaunchConfiguration {
        let configuration: LaunchConfiguration
        do {
            configuration = try YAMLDecoder().decode(LaunchConfiguration.self, from: text.isEmpty ? "{}" : text)
        } catch let error as DecodingError {
            throw Problem("configuration: \(GvproxyConfiguration.explain(error))")
        } catch {
            throw Problem("configuration: \(error)")
        }
        try configuration.validate()
        return configuration
    }

    /// Checks the values no type expresses.
    public func validate() throws(Problem) {
        guard !name.isEmpty, name.count <= 32,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw Problem("name '\(name)' must be 1 to 32 letters, digits, '-' or '_'")
        }
        if let mac = guest.mac, MACAddress(mac) == nil { throw Problem("guest.mac '\(mac)' is not a MAC address") }
        if let console = guest.console, !["hvc0", "ttyS0"].contains(console) {
            throw Problem("guest.console '\(console)' must be hvc0 or ttyS0")
        }
        try checkTransport()
        if guest.transport == .serial, proxy != nil {
            throw Problem("guest.transport serial needs the in-process proxy (its --listen-serial socket), not proxy:")
        }
        if let accel = guest.accel, !["auto", "kvm", "tcg"].contains(accel) {
            throw Problem("guest.accel '\(accel)' must be auto, kvm or tcg")
        }
        if let memory = guest.memory, memory < 32 { throw Problem("guest.memory \(memory) MiB is too small") }
        if let cpus = guest.cpus, !(1...256).contains(cpus) { throw Problem("guest.cpus \(cpus) must be 1 to 256") }
        if let timeout = guest.stopTimeout, !(0...600).contains(timeout) {
            throw Problem("guest.stop-timeout \(timeout) must be 0 to 600 seconds")
        }
        if let cid = guest.cid, cid < 3 { throw Problem("guest.cid \(cid) must be 3 or more (0-2 are reserved)") }
        if guest.kind != .netns {
            guard guest.kernel != nil else { throw Problem("guest.kernel is needed for a \(guest.kind) guest") }
        }
        if guest.kind == .crosvm, guest.disk == nil { throw Problem("guest.disk is needed for a crosvm guest") }
        if let proxy {
            guard (try? Endpoint(url: proxy.api)) != nil else { throw Problem("proxy.api '\(proxy.api)' is not an endpoint URL") }
            if guest.kind != .crosvm {
                guard let listen = proxy.listen, case .unix? = try? Endpoint(url: listen) else {
                    throw Problem("proxy.listen must be the running proxy's unix:// listener for a \(guest.kind) guest")
                }
            }
        }
        if let timeout = checks.leaseTimeout, !(1...3600).contains(timeout) {
            throw Problem("checks.lease-timeout \(timeout) must be 1 to 3600 seconds")
        }
        if let ping = checks.ping, !(0...100).contains(ping) { throw Problem("checks.ping \(ping) must be 0 to 100") }
        if let ports = checks.tcp, ports.contains(0) { throw Problem("checks.tcp: port 0 cannot be checked") }
        if let hostPing = checks.tailscale?.hostPing, !["auto", "true", "false"].contains(hostPing) {
            throw Problem("checks.tailscale.host-ping '\(hostPing)' must be auto, true or false")
        }
    }

    /// Checks that the guest's transport fits its kind.
    public func checkTransport() throws(Problem) {
        switch (guest.kind, guest.transport) {
        case (_, nil), (.qemu, .virtioNet?), (.qemu, .serial?), (.crosvm, .vsock?), (.crosvm, .serial?): break
        case (let kind, let transport?):
            throw Problem("guest.transport \(transport.rawValue) does not fit a \(kind) guest"
                          + (kind == .netns ? " (it reaches the proxy over a unix socket)" : ""))
        }
    }

    /// The guest's MAC: configured, or gvforwarder's default.
    public var guestMAC: MACAddress {
        guest.mac.flatMap(MACAddress.init) ?? MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
    }

    /// How the guest's frames reach the proxy, by default for its kind.
    public var transport: Transport? {
        guest.transport ?? (guest.kind == .qemu ? .virtioNet : guest.kind == .crosvm ? .vsock : nil)
    }

    /// The kernel command line: the console, then the user's parameters.
    public var kernelParameters: String {
        ["console=\(guest.console ?? "hvc0")", guest.params].compactMap { $0 }.joined(separator: " ")
    }
}
