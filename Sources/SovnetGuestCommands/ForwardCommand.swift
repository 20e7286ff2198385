// `sovnet forward`, flag-compatible with gvforwarder: every gvforwarder flag
// is accepted with one dash (`-url`) as well as two (`--url`).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import Logging
import SovnetGuest
import SovnetLink
import SovnetWire

/// `sovnet forward`: its command line, and the forwarder it starts.
public enum ForwardCommand {
    /// gvforwarder's defaults, shown by the help and used when a flag is not given.
    enum Default {
        static let url = "vsock://2:1024/connect"
        static let iface = "tap0"
        static let mac = "5a:94:ef:e4:0c:ee"
        static let mtu = 1500
        static let stopIfExist = "eth0,ens3,enp0s1"
        static let resolvConf = "/etc/resolv.conf"
        static let busyPollMicroseconds = BusyPoll.defaultMicroseconds
    }

    public static let spec = CommandSpec(
        name: "forward",
        abstract: "Guest side: move frames between a tap device and the host, with a built-in DHCP client.",
        discussion: "Replaces gvforwarder. Creates the tap, connects to the host (gvproxy or sovnet proxy), "
            + "obtains a DHCP lease itself and configures address, route, MTU and DNS through netlink. "
            + "It runs no other program. See docs/forward.md.",
        options: [
            OptionSpec("url", singleDash: true, .value(placeholder: "url"),
                       help: "Where the host listens: vsock://CID:PORT/connect, unix:///PATH, tcp://HOST:PORT, stdio:, "
                           + "or serial:///dev/hvc1 (a virtio console port).",
                       default: Default.url),
            OptionSpec("protocol", .value(placeholder: "protocol"),
                       help: "Framing: vm (gvproxy -listen), qemu (passt, QEMU stream), stdio. Default: vm, or stdio for stdio:."),
            OptionSpec("iface", singleDash: true, .value(placeholder: "iface"), help: "Tap interface name.", default: Default.iface),
            OptionSpec("mac", singleDash: true, .value(placeholder: "mac"), help: "MAC address of the tap.",
                       default: Default.mac),
            OptionSpec("mtu", singleDash: true, .value(placeholder: "mtu"), help: "Link MTU.", default: "\(Default.mtu)"),
            OptionSpec("preexisting", singleDash: true, .toggle,
                       help: "Attach to an existing, configured tap and change nothing (no DHCP)."),
            OptionSpec("stop-if-exist", singleDash: true, .value(placeholder: "stop-if-exist"),
                       help: "Exit 0 at once if one of these interfaces exists (comma-separated; empty disables).",
                       default: Default.stopIfExist),
            OptionSpec("debug", singleDash: true, .toggle, help: "Log every frame as a one-line summary."),
            OptionSpec("resolv-conf", .value(placeholder: "resolv-conf"),
                       help: "File for DNS servers and search domains, or 'none'.", default: Default.resolvConf),
            OptionSpec("static", .value(placeholder: "static"), help: "Use ADDR/PREFIX instead of DHCP (needs --gateway)."),
            OptionSpec("gateway", .value(placeholder: "gateway"), help: "Default gateway with --static."),
            OptionSpec("dns", .repeatedValue(placeholder: "dns"), help: "DNS server with --static (repeatable)."),
            OptionSpec("hostname", .value(placeholder: "hostname"),
                       help: "Host name sent to the DHCP server (default: this host's name)."),
            OptionSpec("no-offload", .toggle,
                       help: "Do not ask the host for offloads (TCP superframes and unfinished checksums between tap and proxy)."),
            OptionSpec("busy-poll", .value(placeholder: "microseconds"),
                       help: "Keep polling this long after work before sleeping, 0 to 10000; 0: never.",
                       default: "\(Default.busyPollMicroseconds)"),
            OptionSpec("pcap", .value(placeholder: "pcap"),
                       help: "Record every frame crossing in either direction to this pcap file."),
            OptionSpec("pcap-filter", .value(placeholder: "pcap-filter"),
                       help: "Only record frames matching this BPF expression (needs libpcap installed)."),
        ] + LogSettings.options
    )

    public static let command = RunnableCommand(spec: spec) { (options) throws(CommandFailure) in
        let forwarder: Forwarder
        do throws(UsageError) {
            try LogSettings.bootstrap(options, default: options.isOn("debug") ? .debug : .info)
            forwarder = Forwarder(options: try forwarderOptions(options), logger: Logger(label: "sovnet.forward"))
        } catch {
            throw .usage(error)
        }
        do throws(Forwarder.Failure) {
            return try forwarder.run()
        } catch {
            throw .failed(error.description)
        }
    }

    /// What the forwarder is to do, from the command line; usage errors for what cannot be.
    public static func forwarderOptions(_ options: ParsedOptions) throws(UsageError) -> ForwarderOptions {
        let mtu = try options.integer("mtu") ?? Default.mtu
        guard (68...65521).contains(mtu) else {
            throw UsageError("-mtu must be between 68 and 65521 (a frame must fit the 16-bit framing)")
        }
        let endpoint: Endpoint
        do {
            endpoint = try Endpoint(url: options.value("url") ?? Default.url)
        } catch {
            throw UsageError(error.description)
        }
        let framing: Framing
        if let protocolName = options.value("protocol") {
            guard let chosen = Framing(rawValue: protocolName), chosen.lengthPrefix != nil else {
                throw UsageError("--protocol must be vm, qemu or stdio")
            }
            framing = chosen
        } else {
            framing = endpoint == .stdio ? .stdio : .vm
        }
        let mac = options.value("mac") ?? Default.mac
        guard let macAddress = MACAddress(mac) else {
            throw UsageError("bad -mac '\(mac)': want six hexadecimal pairs, such as 5a:94:ef:e4:0c:ee")
        }
        let fixed = try staticAddress(options)
        let preexisting = options.isOn("preexisting")
        let resolvConf = options.value("resolv-conf") ?? Default.resolvConf
        var forwarderOptions = ForwarderOptions(
            endpoint: endpoint, framing: framing, interface: options.value("iface") ?? Default.iface, mac: macAddress, mtu: mtu,
            preexisting: preexisting,
            stopIfExist: (options.value("stop-if-exist") ?? Default.stopIfExist).split(separator: ",")
                .map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty },
            resolvConf: resolvConf == "none" ? nil : resolvConf, staticAddress: fixed,
            hostName: options.value("hostname") ?? systemHostName(), pcapPath: options.value("pcap"),
            pcapFilter: options.value("pcap-filter"), debug: options.isOn("debug"))
        let busyPoll = try options.integer("busy-poll") ?? Default.busyPollMicroseconds
        guard BusyPoll.allowedMicroseconds.contains(busyPoll) else {
            throw UsageError("--busy-poll must be 0 to 10000 microseconds")
        }
        forwarderOptions.busyPoll = .microseconds(busyPoll)
        // Offloads need a vm socket, a tap of our own, and frames whose header still fits the 16-bit length.
        forwarderOptions.offload = !options.isOn("no-offload") && framing == .vm && endpoint.isStreamSocket && !preexisting
            && forwarderOptions.maximumFrameLength <= OffloadLink.superframeLimit
        return forwarderOptions
    }

    /// `--static`, `--gateway` and `--dns`, which go together.
    private static func staticAddress(_ options: ParsedOptions) throws(UsageError) -> ForwarderOptions.StaticAddress? {
        let gateway = options.value("gateway")
        guard let text = options.value("static") else {
            if gateway != nil { throw UsageError("--gateway is only used with --static") }
            return nil
        }
        guard let gateway else { throw UsageError("--static needs --gateway") }
        let parts = text.split(separator: "/")
        guard parts.count == 2, let address = IPv4Address(parts[0]), let prefix = Int(parts[1]), (1...32).contains(prefix),
              let router = IPv4Address(gateway) else {
            throw UsageError("--static wants ADDR/PREFIX and --gateway an address")
        }
        var servers: [IPv4Address] = []
        for server in options.values("dns") {
            guard let parsed = IPv4Address(server) else { throw UsageError("bad --dns '\(server)'") }
            servers.append(parsed)
        }
        return .init(address: address, prefixLength: prefix, gateway: router, dns: servers)
    }

    static func systemHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty || name == "(none)" ? nil : name
    }
}
