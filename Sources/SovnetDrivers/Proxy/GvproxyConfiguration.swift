// gvproxy's YAML configuration file (`-config`), read with the same keys:
//
//   mtu: 1500
//   subnet: 192.168.127.0/24
//   gatewayIP: 192.168.127.1
//   gatewayMacAddress: 5a:94:ef:e4:0c:dd
//   dns:
//     - name: containers.internal.
//       records:
//         - name: gateway
//           ip: 192.168.127.1
//       defaultIP: 192.168.127.254      (optional)
//   dnsSearchDomains: [example.test]
//   gatewayVirtualIPs: [192.168.127.254]
//   dhcpStaticLeases: {192.168.127.2: "5a:94:ef:e4:0c:ee"}
//   capture-file: /tmp/switch.pcap
//   debug: true
//   forwards: {"127.0.0.1:2222": "192.168.127.2:22"}    (TCP port forwards)
//   nat: {"192.168.127.254": "127.0.0.1"}                (virtual → host address)
//
// Values that do not parse are errors naming the key; nothing is silently
// ignored except keys gvproxy itself ignores on Linux (vpnKitUUIDMacAddresses).
import SovnetCore
import SovnetWire
import Yams

/// The keys of gvproxy's configuration file.
public struct GvproxyConfiguration: Decodable, Sendable {
    public var debug: Bool?
    public var captureFile: String?
    public var mtu: Int?
    public var subnet: String?
    public var gatewayIP: String?
    public var gatewayMacAddress: String?
    public var dns: [Zone]?
    public var dnsSearchDomains: [String]?
    public var forwards: [String: String]?
    public var nat: [String: String]?
    public var gatewayVirtualIPs: [String]?
    public var dhcpStaticLeases: [String: String]?
    public var vpnKitUUIDMacAddresses: [String: String]?

    public struct Zone: Decodable, Sendable {
        public var name: String
        public var records: [Record]?
        public var defaultIP: String?
    }

    public struct Record: Decodable, Sendable {
        public var name: String?
        public var ip: String?
        public var regexp: String?
    }

    enum CodingKeys: String, CodingKey {
        case debug, mtu, subnet, gatewayIP, gatewayMacAddress, dns, dnsSearchDomains, forwards, nat
        case gatewayVirtualIPs, dhcpStaticLeases, vpnKitUUIDMacAddresses
        case captureFile = "capture-file"
    }

    /// A configuration problem, naming the key.
    public struct Problem: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses YAML text.
    public static func parse(_ text: String) throws -> GvproxyConfiguration {
        do {
            return try YAMLDecoder().decode(GvproxyConfiguration.self, from: text)
        } catch let error as DecodingError {
            throw Problem(description: "configuration: \(Self.explain(error))")
        } catch {
            throw Problem(description: "configuration: \(error)")
        }
    }

    /// Applies the file's network settings on top of `network`.
    public func apply(to network: inout VirtualNetworkConfiguration) throws {
        if let mtu {
            guard (576...65521).contains(mtu) else { throw Problem(description: "configuration: mtu \(mtu) is out of range") }
            network.mtu = mtu
        }
        if let subnet {
            let parts = subnet.split(separator: "/")
            guard parts.count == 2, let base = IPv4Address(parts[0]), let prefix = Int(parts[1]), (8...30).contains(prefix) else {
                throw Problem(description: "configuration: subnet '\(subnet)' is not ADDRESS/PREFIX")
            }
            network.prefixLength = prefix
            network.gatewayAddress = IPv4Address(rawValue: base.masked(prefixLength: prefix).rawValue + 1)
        }
        if let gatewayIP { network.gatewayAddress = try address(gatewayIP, "gatewayIP") }
        if let gatewayMacAddress {
            guard let mac = MACAddress(gatewayMacAddress) else {
                throw Problem(description: "configuration: gatewayMacAddress '\(gatewayMacAddress)' is not a MAC address")
            }
            network.gatewayMAC = mac
        }
        if let gatewayVirtualIPs { network.virtualAddresses = try gatewayVirtualIPs.map { try address($0, "gatewayVirtualIPs") } }
        if let dhcpStaticLeases {
            var bindings: [MACAddress: IPv4Address] = [:]
            for (ip, macText) in dhcpStaticLeases {
                guard let mac = MACAddress(macText) else {
                    throw Problem(description: "configuration: dhcpStaticLeases: '\(macText)' is not a MAC address")
                }
                bindings[mac] = try address(ip, "dhcpStaticLeases")
            }
            network.staticBindings = bindings
        }
        if let dnsSearchDomains { network.searchDomains = dnsSearchDomains.map { DNSName($0) } }
        for zone in dns ?? [] {
            var records: [String: IPv4Address] = [:]
            for record in zone.records ?? [] {
                guard record.regexp == nil else {
                    throw Problem(description: "configuration: dns zone \(zone.name): regexp records are not supported")
                }
                guard let name = record.name, let ip = record.ip else {
                    throw Problem(description: "configuration: dns zone \(zone.name): a record needs name and ip")
                }
                records[name] = try address(ip, "dns records")
            }
            network.dnsZones.append(DNSZoneConfiguration(
                name: DNSName(zone.name), records: records,
                defaultAddress: try zone.defaultIP.map { try address($0, "dns defaultIP") }))
        }
    }

    /// Applies the file's `nat` and `forwards` on top of `nat`.
    public func apply(to nat: inout NATConfiguration) throws {
        for (virtual, host) in self.nat ?? [:] {
            nat.policy.translations[try address(virtual, "nat")] = try address(host, "nat")
        }
        for (local, remote) in (forwards ?? [:]).sorted(by: { $0.key < $1.key }) {
            do {
                let forward = try PortForward(kind: .tcp, local: local, remote: remote)
                nat.forwards.removeAll { $0.kind == forward.kind && $0.local == forward.local }
                nat.forwards.append(forward)
            } catch {
                throw Problem(description: "configuration: forwards: \(error)")
            }
        }
    }

    private func address(_ text: String, _ key: String) throws -> IPv4Address {
        guard let value = IPv4Address(text) else {
            throw Problem(description: "configuration: \(key): '\(text)' is not an IPv4 address")
        }
        return value
    }

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
