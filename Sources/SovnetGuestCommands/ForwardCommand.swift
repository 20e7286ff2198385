import ArgumentParser
import Glibc
import Logging
import SovnetGuest
import SovnetLink
import SovnetWire

/// `sovnet forward`, flag-compatible with gvforwarder: every gvforwarder
/// flag is accepted with one dash (`-url`) as well as two (`--url`).
public struct ForwardCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Guest side: move frames between a tap device and the host, with a built-in DHCP client.",
        discussion: """
            Replaces gvforwarder. Creates the tap, connects to the host (gvproxy or sovnet proxy), \
            obtains a DHCP lease itself and configures address, route, MTU and DNS through netlink. \
            It runs no other program. See docs/forward.md.
            """
    )

    @Option(name: [.customLong("url", withSingleDash: true), .customLong("url")],
            help: "Where the host listens: vsock://CID:PORT/connect, unix:///PATH, tcp://HOST:PORT, stdio:, or serial:///dev/hvc1 (a virtio console port).")
    var url = "vsock://2:1024/connect"

    @Option(name: [.customLong("protocol")],
            help: "Framing: vm (gvproxy -listen), qemu (passt, QEMU stream), stdio. Default: vm, or stdio for stdio:.")
    var protocolName: String?

    @Option(name: [.customLong("iface", withSingleDash: true), .customLong("iface")], help: "Tap interface name.")
    var iface = "tap0"

    @Option(name: [.customLong("mac", withSingleDash: true), .customLong("mac")], help: "MAC address of the tap.")
    var mac = "5a:94:ef:e4:0c:ee"

    @Option(name: [.customLong("mtu", withSingleDash: true), .customLong("mtu")], help: "Link MTU.")
    var mtu = 1500

    @Flag(name: [.customLong("preexisting", withSingleDash: true), .customLong("preexisting")],
          help: "Attach to an existing, configured tap and change nothing (no DHCP).")
    var preexisting = false

    @Option(name: [.customLong("stop-if-exist", withSingleDash: true), .customLong("stop-if-exist")],
            help: "Exit 0 at once if one of these interfaces exists (comma-separated; empty disables).")
    var stopIfExist = "eth0,ens3,enp0s1"

    @Flag(name: [.customLong("debug", withSingleDash: true), .customLong("debug")],
          help: "Log every frame as a one-line summary.")
    var debug = false

    @Option(name: .customLong("resolv-conf"), help: "File for DNS servers and search domains, or 'none'.", completion: .file())
    var resolvConf = "/etc/resolv.conf"

    @Option(name: .customLong("static"), help: "Use ADDR/PREFIX instead of DHCP (needs --gateway).")
    var staticAddress: String?

    @Option(name: .customLong("gateway"), help: "Default gateway with --static.")
    var gateway: String?

    @Option(name: .customLong("dns"), help: "DNS server with --static (repeatable).")
    var dns: [String] = []

    @Option(name: .customLong("hostname"), help: "Host name sent to the DHCP server (default: this host's name).")
    var hostName: String?

    @Flag(name: .customLong("no-offload"),
          help: "Do not ask the host for offloads (TCP superframes and unfinished checksums between tap and proxy).")
    var noOffload = false

    @Option(name: .customLong("pcap"), help: "Record every frame crossing in either direction to this pcap file.", completion: .file())
    var pcap: String?

    @Option(name: .customLong("pcap-filter"), help: "Only record frames matching this BPF expression.")
    var pcapFilter: String?

    public func validate() throws {
        if staticAddress != nil, gateway == nil { throw ValidationError("--static needs --gateway") }
        if gateway != nil, staticAddress == nil { throw ValidationError("--gateway is only used with --static") }
        guard (68...65521).contains(mtu) else { throw ValidationError("-mtu must be between 68 and 65521 (a frame must fit the 16-bit framing)") }
    }

    @OptionGroup var logging: LoggingOptions

    public func run() throws {
        try Self.reportingUsage { try logging.bootstrap(default: debug ? .debug : .info) }
        let options = try Self.reportingUsage(makeOptions)
        let forwarder = Forwarder(options: options, logger: Logger(label: "sovnet.forward"))
        let status = try forwarder.run()
        if status != 0 { throw ExitCode(status) }
    }

    func makeOptions() throws -> ForwarderOptions {
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(url: url)
        } catch {
            throw ValidationError(error.description)
        }
        let framing: Framing
        if let protocolName {
            guard let chosen = Framing(rawValue: protocolName), chosen.lengthPrefix != nil else {
                throw ValidationError("--protocol must be vm, qemu or stdio")
            }
            framing = chosen
        } else {
            framing = endpoint == .stdio ? .stdio : .vm
        }
        guard let macAddress = MACAddress(mac) else {
            throw ValidationError("bad -mac '\(mac)': want six hexadecimal pairs, such as 5a:94:ef:e4:0c:ee")
        }
        var fixed: ForwarderOptions.StaticAddress?
        if let staticAddress {
            let parts = staticAddress.split(separator: "/")
            guard parts.count == 2, let address = IPv4Address(parts[0]), let prefix = Int(parts[1]), (1...32).contains(prefix),
                  let gateway, let router = IPv4Address(gateway) else {
                throw ValidationError("--static wants ADDR/PREFIX and --gateway an address")
            }
            let servers = try dns.map { text -> IPv4Address in
                guard let server = IPv4Address(text) else { throw ValidationError("bad --dns '\(text)'") }
                return server
            }
            fixed = .init(address: address, prefixLength: prefix, gateway: router, dns: servers)
        }
        var options = ForwarderOptions(
            endpoint: endpoint, framing: framing, interface: iface, mac: macAddress, mtu: mtu,
            preexisting: preexisting,
            stopIfExist: stopIfExist.split(separator: ",").map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty },
            resolvConf: resolvConf == "none" ? nil : resolvConf, staticAddress: fixed,
            hostName: hostName ?? Self.systemHostName(), pcapPath: pcap, pcapFilter: pcapFilter, debug: debug)
        // Offloads need a vm socket, a tap of our own, and frames whose header still fits the 16-bit length.
        options.offload = !noOffload && framing == .vm && endpoint.isStreamSocket && !preexisting
            && options.maximumFrameLength <= OffloadLink.superframeLimit
        return options
    }

    static func systemHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty || name == "(none)" ? nil : name
    }
}
