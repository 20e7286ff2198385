// gvproxy's YAML configuration file (`-config`), in both of its layouts.
//
// Current gvproxy nests the network under `stack:` and adds the process's
// own settings beside it:
//
//   log-level: info                       trace, debug, info, warning, error
//   listen: [unix:///tmp/network.sock]    as -listen
//   interfaces: {qemu: unix:///tmp/qemu.sock, bess: …, vfkit: …, stdio: …, vpnkit: …}
//   forwards:                             unix sockets forwarded over SSH (-forward-sock …)
//     - {socket: /tmp/podman.sock, dest: /run/podman/podman.sock, user: core, identity: /path/key}
//   pid-file: …   log-file: …   services: …   notification: unix:///…   ec2-metadata-access: false
//   stack:
//     mtu: 1500
//     subnet: 192.168.127.0/24
//     gatewayIP: 192.168.127.1      (default: the subnet's first address)
//     deviceIP: 192.168.127.2       (the guest's static lease and -ssh-port's target)
//     hostIP: 192.168.127.254       (default: the subnet's last address)
//     gatewayMacAddress: 5a:94:ef:e4:0c:dd
//     dns:
//       - name: containers.internal.
//         records:
//           - {name: gateway, ip: 192.168.127.1}
//           - {regexp: '^web-.*', ip: 192.168.127.3}   (matched against the name without the zone)
//         defaultIP: 192.168.127.254
//     dnsSearchDomains: [example.test]
//     forwards: {"127.0.0.1:2222": "192.168.127.2:22", "udp:127.0.0.1:5353": "192.168.127.2:53"}
//     nat: {"192.168.127.254": "127.0.0.1", "fd00::254": "::1"}   (either family, each side)
//     gatewayVirtualIPs: [192.168.127.254]
//     dhcpStaticLeases: {"192.168.127.2": "5a:94:ef:e4:0c:ee"}
//     vpnKitUUIDMacAddresses: {…}   (read and checked; HyperKit is not on Linux)
//     debug: false   capture-file: /tmp/switch.pcap   ec2MetadataAccess: false
//     ipv6: true                    (sovnet's: false is --no-ipv6, gvproxy's IPv4 only)
//     ipv6Prefix: fd00::/64         (sovnet's: the guests' IPv6 /64, as --ipv6-prefix)
//     dhcpv6Addresses: false        (sovnet's: addresses by DHCPv6 too, as --dhcpv6-addresses)
//
// Older gvproxy read the `stack:` keys at the top level, with `forwards` as
// the port forward map; a file without any of the nested layout's keys is
// read that way. Every value is checked while reading, and every problem
// names its key and line (`ConfigurationReader`).
import Logging
import SovnetCore
import SovnetWire
import Yams

/// The settings of a gvproxy configuration file.
public struct GvproxyConfiguration: Sendable {
    /// Which of gvproxy's layouts the file uses.
    public enum Layout: Sendable { case flat, nested }

    /// A unix socket forwarded into the guest over SSH (gvproxy's `forwards:` list).
    public struct SSHForward: Sendable, Equatable {
        public var socket: String
        public var dest: String
        public var user: String
        public var identity: String
    }

    /// The single-guest listeners of `interfaces:`.
    public struct Interfaces: Sendable, Equatable {
        public var vpnkit: String?
        public var qemu: String?
        public var bess: String?
        public var stdio: String?
        public var vfkit: String?
    }

    /// A subnet as `ADDRESS/PREFIX`.
    public struct Subnet: Sendable, Equatable {
        public var network: IPv4Address
        public var prefixLength: Int
    }

    public var layout: Layout = .flat
    public var listen: [String] = []
    public var logLevel: Logger.Level?
    public var interfaces = Interfaces(vpnkit: nil, qemu: nil, bess: nil, stdio: nil, vfkit: nil)
    public var sshForwards: [SSHForward] = []
    public var pidFile: String?
    public var logFile: String?
    public var services: String?
    public var notification: String?
    public var ec2MetadataAccess: Bool?

    public var debug: Bool?
    public var captureFile: String?
    public var mtu: Int?
    public var subnet: Subnet?
    public var gatewayIP: IPv4Address?
    public var deviceIP: IPv4Address?
    public var hostIP: IPv4Address?
    public var gatewayMAC: MACAddress?
    public var dnsZones: [DNSZoneConfiguration] = []
    public var searchDomains: [DNSName]?
    public var forwards: [PortForward] = []
    public var nat: [IPAddress: IPAddress]?
    public var ipv6: Bool?
    public var ipv6Prefix: IPv6Address?
    public var dhcpv6Addresses: Bool?
    public var gatewayVirtualIPs: [IPv4Address]?
    public var staticLeases: [MACAddress: IPv4Address]?

    static let nestedKeys = ["listen", "log-level", "stack", "interfaces", "forwards", "pid-file", "log-file", "services",
                             "ec2-metadata-access", "notification"]
    static let stackKeys = ["debug", "capture-file", "mtu", "subnet", "gatewayIP", "deviceIP", "hostIP", "gatewayMacAddress",
                            "dns", "dnsSearchDomains", "forwards", "nat", "gatewayVirtualIPs", "dhcpStaticLeases",
                            "vpnKitUUIDMacAddresses", "ec2MetadataAccess", "ipv6", "ipv6Prefix", "dhcpv6Addresses"]
    static let logLevels: [String: Logger.Level] = [
        "trace": .trace, "debug": .debug, "info": .info, "warn": .warning, "warning": .warning, "error": .error,
        "fatal": .critical, "panic": .critical,
    ]

    /// Parses and checks YAML text.
    public static func parse(_ text: String) throws(ConfigurationProblem) -> GvproxyConfiguration {
        let root = try ConfigurationReader.root(text)
        var file = GvproxyConfiguration()
        let keys = Set(root.mapping?.keys.compactMap { $0.scalar?.string } ?? [])
        let nested = !keys.isDisjoint(with: nestedKeys.filter { $0 != "forwards" }) || root.mapping?["forwards"]?.sequence != nil
        if nested {
            file.layout = .nested
            let fields = try ConfigurationReader.fields(root, "", known: nestedKeys)
            try file.readProcess(fields)
            if let stack = fields["stack"] {
                try file.readStack(try ConfigurationReader.fields(stack, "stack", known: stackKeys), path: "stack.")
            }
        } else {
            try file.readStack(try ConfigurationReader.fields(root, "", known: stackKeys), path: "")
        }
        return file
    }

    private mutating func readProcess(_ fields: [String: Node]) throws(ConfigurationProblem) {
        typealias Reader = ConfigurationReader
        if let node = fields["listen"] { listen = try Reader.strings(node, "listen") }
        if let node = fields["log-level"] {
            let text = try Reader.string(node, "log-level")
            guard let level = Self.logLevels[text.lowercased()] else {
                throw ConfigurationProblem(node, "log-level", "'\(text)' is not one of trace, debug, info, warning, error")
            }
            logLevel = level
        }
        if let node = fields["interfaces"] {
            let entries = try Reader.fields(node, "interfaces", known: ["vpnkit", "qemu", "bess", "stdio", "vfkit"])
            interfaces.vpnkit = try entries["vpnkit"].map { node throws(ConfigurationProblem) in try Reader.string(node, "interfaces.vpnkit") }
            interfaces.qemu = try entries["qemu"].map { node throws(ConfigurationProblem) in try Reader.string(node, "interfaces.qemu") }
            interfaces.bess = try entries["bess"].map { node throws(ConfigurationProblem) in try Reader.string(node, "interfaces.bess") }
            interfaces.stdio = try entries["stdio"].map { node throws(ConfigurationProblem) in try Reader.string(node, "interfaces.stdio") }
            interfaces.vfkit = try entries["vfkit"].map { node throws(ConfigurationProblem) in try Reader.string(node, "interfaces.vfkit") }
        }
        if let node = fields["forwards"] {
            for item in try Reader.list(node, "forwards") {
                let entry = try Reader.fields(item, "forwards", known: ["socket", "dest", "user", "identity"])
                func value(_ key: String) throws(ConfigurationProblem) -> String {
                    guard let node = entry[key] else { throw ConfigurationProblem(item, "forwards", "an SSH forward needs '\(key)'") }
                    return try Reader.string(node, "forwards.\(key)")
                }
                sshForwards.append(SSHForward(socket: try value("socket"), dest: try value("dest"), user: try value("user"),
                                              identity: try value("identity")))
            }
        }
        if let node = fields["pid-file"] { pidFile = try Reader.string(node, "pid-file") }
        if let node = fields["log-file"] { logFile = try Reader.string(node, "log-file") }
        if let node = fields["services"] { services = try Reader.string(node, "services") }
        if let node = fields["notification"] { notification = try Reader.string(node, "notification") }
        if let node = fields["ec2-metadata-access"] { ec2MetadataAccess = try Reader.bool(node, "ec2-metadata-access") }
    }

    private mutating func readStack(_ fields: [String: Node], path: String) throws(ConfigurationProblem) {
        typealias Reader = ConfigurationReader
        func address(_ node: Node, _ key: String) throws(ConfigurationProblem) -> IPv4Address {
            let text = try Reader.string(node, path + key)
            guard let value = IPv4Address(text) else { throw ConfigurationProblem(node, path + key, "'\(text)' is not an IPv4 address") }
            return value
        }
        func mac(_ node: Node, _ text: String, _ key: String) throws(ConfigurationProblem) -> MACAddress {
            guard let value = MACAddress(text) else { throw ConfigurationProblem(node, path + key, "'\(text)' is not a MAC address") }
            return value
        }
        if let node = fields["debug"] { debug = try Reader.bool(node, path + "debug") }
        if let node = fields["capture-file"] { captureFile = try Reader.string(node, path + "capture-file") }
        if let node = fields["ec2MetadataAccess"] { ec2MetadataAccess = try Reader.bool(node, path + "ec2MetadataAccess") }
        if let node = fields["mtu"] {
            let value = try Reader.int(node, path + "mtu")
            guard (576...65521).contains(value) else {
                throw ConfigurationProblem(node, path + "mtu", "\(value) is out of range (576 to 65521: a frame must fit the 16-bit framing)")
            }
            mtu = value
        }
        if let node = fields["subnet"] {
            let text = try Reader.string(node, path + "subnet")
            let parts = text.split(separator: "/")
            guard parts.count == 2, let base = IPv4Address(parts[0]), let prefix = Int(parts[1]), (8...29).contains(prefix) else {
                throw ConfigurationProblem(node, path + "subnet", "'\(text)' is not ADDRESS/PREFIX with a prefix from 8 to 29")
            }
            subnet = Subnet(network: base.masked(prefixLength: prefix), prefixLength: prefix)
        }
        if let node = fields["ipv6Prefix"] {
            let text = try Reader.string(node, path + "ipv6Prefix")
            guard let network = VirtualNetworkConfiguration.ipv6Network(text) else {
                throw ConfigurationProblem(node, path + "ipv6Prefix", "'\(text)' is not a unicast /64 such as fd00::/64")
            }
            ipv6Prefix = network
        }
        if let node = fields["dhcpv6Addresses"] { dhcpv6Addresses = try Reader.bool(node, path + "dhcpv6Addresses") }
        if let node = fields["ipv6"] { ipv6 = try Reader.bool(node, path + "ipv6") }
        if let node = fields["gatewayIP"] { gatewayIP = try address(node, "gatewayIP") }
        if let node = fields["deviceIP"] { deviceIP = try address(node, "deviceIP") }
        if let node = fields["hostIP"] { hostIP = try address(node, "hostIP") }
        if let node = fields["gatewayMacAddress"] {
            gatewayMAC = try mac(node, try Reader.string(node, path + "gatewayMacAddress"), "gatewayMacAddress")
        }
        if let node = fields["gatewayVirtualIPs"] {
            var addresses: [IPv4Address] = []
            for item in try Reader.list(node, path + "gatewayVirtualIPs") { addresses.append(try address(item, "gatewayVirtualIPs")) }
            gatewayVirtualIPs = addresses
        }
        if let node = fields["dhcpStaticLeases"] {
            var leases: [MACAddress: IPv4Address] = [:]
            for (ip, macText, key) in try Reader.pairs(node, path + "dhcpStaticLeases") {
                guard let value = IPv4Address(ip) else {
                    throw ConfigurationProblem(key, path + "dhcpStaticLeases", "'\(ip)' is not an IPv4 address")
                }
                leases[try mac(key, macText, "dhcpStaticLeases")] = value
            }
            staticLeases = leases
        }
        if let node = fields["vpnKitUUIDMacAddresses"] {
            for (_, macText, key) in try Reader.pairs(node, path + "vpnKitUUIDMacAddresses") {
                _ = try mac(key, macText, "vpnKitUUIDMacAddresses")
            }
        }
        if let node = fields["dnsSearchDomains"] {
            searchDomains = try Reader.strings(node, path + "dnsSearchDomains").map { DNSName($0) }
        }
        if let node = fields["nat"] {
            var table: [IPAddress: IPAddress] = [:]
            for (virtual, host, key) in try Reader.pairs(node, path + "nat") {
                guard let from = IPAddress(virtual), let to = IPAddress(host) else {
                    throw ConfigurationProblem(key, path + "nat", "'\(virtual): \(host)' is not VIRTUAL_IP: HOST_IP")
                }
                table[from] = to
            }
            nat = table
        }
        if let node = fields["forwards"] {
            for (local, remote, key) in try Reader.pairs(node, path + "forwards") {
                var kind = PortForward.Kind.tcp
                var address = Substring(local)
                for candidate in [PortForward.Kind.tcp, .udp] where address.hasPrefix("\(candidate.rawValue):") {
                    kind = candidate
                    address = address.dropFirst(candidate.rawValue.count + 1)
                }
                do {
                    forwards.append(try PortForward(kind: kind, local: String(address), remote: remote))
                } catch {
                    throw ConfigurationProblem(key, path + "forwards", error.description)
                }
            }
        }
        if let node = fields["dns"] {
            for item in try Reader.list(node, path + "dns") {
                dnsZones.append(try readZone(item, path: path + "dns"))
            }
        }
    }

    private func readZone(_ node: Node, path: String) throws(ConfigurationProblem) -> DNSZoneConfiguration {
        typealias Reader = ConfigurationReader
        let fields = try Reader.fields(node, path, known: ["name", "records", "defaultIP"])
        guard let nameNode = fields["name"] else { throw ConfigurationProblem(node, path, "a zone needs a name") }
        let name = try Reader.string(nameNode, path + ".name")
        var zone = DNSZoneConfiguration(name: DNSName(name), records: [:], defaultAddress: nil)
        if let defaultNode = fields["defaultIP"] {
            let text = try Reader.string(defaultNode, path + ".defaultIP")
            guard let value = IPv4Address(text) else {
                throw ConfigurationProblem(defaultNode, path + ".defaultIP", "'\(text)' is not an IPv4 address")
            }
            zone.defaultAddress = value
        }
        for record in try fields["records"].map({ node throws(ConfigurationProblem) in try Reader.list(node, path + ".records") }) ?? [] {
            let entry = try Reader.fields(record, path + ".records", known: ["name", "ip", "regexp"])
            guard let ipNode = entry["ip"] else { throw ConfigurationProblem(record, path + ".records", "a record needs an ip") }
            let text = try Reader.string(ipNode, path + ".records.ip")
            guard let ip = IPv4Address(text) else {
                throw ConfigurationProblem(ipNode, path + ".records.ip", "'\(text)' is not an IPv4 address")
            }
            switch (entry["name"], entry["regexp"]) {
            case (let nameNode?, nil):
                zone.records[try Reader.string(nameNode, path + ".records.name")] = ip
            case (nil, let patternNode?):
                let pattern = try Reader.string(patternNode, path + ".records.regexp")
                guard let compiled = DNSNamePattern(pattern, address: ip) else {
                    throw ConfigurationProblem(patternNode, path + ".records.regexp", "'\(pattern)' is not a regular expression")
                }
                zone.patterns.append(compiled)
            default:
                throw ConfigurationProblem(record, path + ".records", "a record needs either a name or a regexp")
            }
        }
        return zone
    }

    /// The network the file describes, on top of `network`: a subnet moves
    /// the gateway, the host alias and the guest's static lease with it
    /// unless they are given too.
    public func apply(to network: inout VirtualNetworkConfiguration) {
        if let mtu { network.mtu = mtu }
        if let subnet {
            network.prefixLength = subnet.prefixLength
            network.gatewayAddress = IPv4Address(rawValue: subnet.network.rawValue + 1)
            let last = IPv4Address(rawValue: (subnet.network.rawValue | ~IPv4Address.mask(prefixLength: subnet.prefixLength).rawValue) - 1)
            network.hostAddress = last
            network.virtualAddresses = [last]
            network.staticBindings = network.staticBindings.mapValues { _ in IPv4Address(rawValue: subnet.network.rawValue + 2) }
        }
        if let gatewayIP { network.gatewayAddress = gatewayIP }
        if let hostIP {
            network.hostAddress = hostIP
            network.virtualAddresses = [hostIP]
        }
        if let deviceIP { network.staticBindings = network.staticBindings.mapValues { _ in deviceIP } }
        if let gatewayMAC { network.gatewayMAC = gatewayMAC }
        if let gatewayVirtualIPs { network.virtualAddresses = gatewayVirtualIPs }
        if let staticLeases { network.staticBindings = staticLeases }
        if let searchDomains { network.searchDomains = searchDomains }
        if let ipv6 { network.ipv6 = ipv6 }
        if let ipv6Prefix { network.useIPv6Network(ipv6Prefix) }
        if let dhcpv6Addresses { network.dhcpv6Pool = dhcpv6Addresses ? VirtualNetworkConfiguration.defaultDHCPv6Pool : nil }
        network.dnsZones += dnsZones
    }

    /// The file's `nat` and `forwards` on top of `nat`.
    public func apply(to nat: inout NATConfiguration) {
        if let table = self.nat {
            for (virtual, host) in table { nat.policy.translations[virtual] = host }
        }
        if let ec2MetadataAccess { nat.policy.allowMetadataService = ec2MetadataAccess }
        for forward in forwards {
            nat.forwards.removeAll { $0.kind == forward.kind && $0.local == forward.local }
            nat.forwards.append(forward)
        }
    }

    /// A decoding error as "key.path: what is wrong" (for `sovnet.yaml`).
    static func explain(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
             .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "\(path): ") + context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }
}
