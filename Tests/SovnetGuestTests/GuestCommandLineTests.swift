import SovnetGuestCommands
import SovnetLink
import SovnetWire
import Testing

/// The guest commands' own parser: Go's flag forms (gvforwarder's command
/// lines), the options it maps them to, and the usage errors.
@Suite struct GuestCommandLineTests {
    func parsed(_ arguments: [String], _ spec: CommandSpec = ForwardCommand.spec) throws -> ParsedOptions {
        guard case .run(let options) = try spec.parse(arguments) else {
            Issue.record("\(arguments) asked for help")
            return ParsedOptions()
        }
        return options
    }

    func usageError(_ arguments: [String]) -> String? {
        do {
            _ = try ForwardCommand.forwarderOptions(try parsed(arguments))
            return nil
        } catch let error as UsageError {
            return error.message
        } catch {
            return "not a usage error: \(error)"
        }
    }

    @Test func everyFormOfGoFlagsIsAccepted() throws {
        for arguments in [["-url", "unix:///a.sock"], ["-url=unix:///a.sock"], ["--url", "unix:///a.sock"],
                          ["--url=unix:///a.sock"]] {
            #expect(try parsed(arguments).value("url") == "unix:///a.sock", "\(arguments)")
        }
        // A value may itself hold '=' and begin with '-'; the last of two wins.
        let options = try parsed(["-iface", "a", "-iface=b=c", "--hostname", "-odd"])
        #expect(options.value("iface") == "b=c" && options.value("hostname") == "-odd")
    }

    @Test func switchesAreOnWhenNamedAndTakeTrueOrFalse() throws {
        #expect(try parsed(["-debug"]).isOn("debug"))
        #expect(try parsed(["-debug=true"]).isOn("debug"))
        #expect(try !parsed(["-debug", "-debug=false"]).isOn("debug"))
        #expect(try !parsed([]).isOn("debug"))
        #expect(throws: UsageError("-debug is a switch: '=maybe' should be =true or =false")) {
            try ForwardCommand.spec.parse(["-debug=maybe"])
        }
    }

    @Test func repeatedOptionsKeepEveryValue() throws {
        let options = try parsed(["--static", "10.0.0.2/24", "--gateway", "10.0.0.1", "--dns", "10.0.0.1", "--dns=10.0.0.53"])
        #expect(options.values("dns") == ["10.0.0.1", "10.0.0.53"])
        let fixed = try ForwardCommand.forwarderOptions(options).staticAddress
        #expect(fixed?.address == IPv4Address("10.0.0.2") && fixed?.prefixLength == 24)
        #expect(fixed?.dns == [IPv4Address("10.0.0.1")!, IPv4Address("10.0.0.53")!])
    }

    @Test func helpIsAskedForBeforeAnythingElseIsChecked() throws {
        for word in ["-h", "--help", "-help"] {
            #expect(try ForwardCommand.spec.parse(["-mtu", "5", word]) == .help)
        }
    }

    @Test func mistakesAreUsageErrors() {
        #expect(throws: UsageError("unknown option '--nosuch'")) { try ForwardCommand.spec.parse(["--nosuch=1"]) }
        // Only gvforwarder's own flags take one dash.
        #expect(throws: UsageError("unknown option '-static'")) { try ForwardCommand.spec.parse(["-static", "x"]) }
        #expect(throws: UsageError("missing value for '-url'")) { try ForwardCommand.spec.parse(["-url"]) }
        #expect(throws: UsageError("unexpected argument 'extra'")) { try ForwardCommand.spec.parse(["extra"]) }
        #expect(throws: UsageError("unexpected argument 'x'")) { try ForwardCommand.spec.parse(["--", "x"]) }
        #expect(usageError(["-mtu", "big"]) == "--mtu wants a whole number, not 'big'")
        #expect(usageError(["-mtu", "67"]) == "-mtu must be between 68 and 65521 (a frame must fit the 16-bit framing)")
        #expect(usageError(["-mac", "zz"]) == "bad -mac 'zz': want six hexadecimal pairs, such as 5a:94:ef:e4:0c:ee")
        #expect(usageError(["--static", "10.0.0.2/24"]) == "--static needs --gateway")
        #expect(usageError(["--gateway", "10.0.0.1"]) == "--gateway is only used with --static")
        #expect(usageError(["--protocol", "bess"]) == "--protocol must be vm, qemu or stdio")
        #expect(usageError(["-url", "ftp://x"])?.contains("ftp://x") == true)
        #expect(usageError(["--busy-poll", "10001"]) == "--busy-poll must be 0 to 10000 microseconds")
        #expect(usageError(["--busy-poll=-1"]) == "--busy-poll must be 0 to 10000 microseconds")
    }

    @Test func defaultsAreGvforwardersAndOffloadsNeedAVmSocket() throws {
        let defaults = try ForwardCommand.forwarderOptions(parsed(["-url", "unix:///a.sock"]))
        #expect(defaults.interface == "tap0" && defaults.mtu == 1500 && defaults.mac == MACAddress("5a:94:ef:e4:0c:ee"))
        #expect(defaults.stopIfExist == ["eth0", "ens3", "enp0s1"] && defaults.resolvConf == "/etc/resolv.conf")
        #expect(defaults.framing == .vm && defaults.offload && defaults.busyPoll == .microseconds(50))
        #expect(try ForwardCommand.forwarderOptions(parsed(["--busy-poll", "0"])).busyPoll == .zero)
        #expect(try !ForwardCommand.forwarderOptions(parsed(["-url", "unix:///a.sock", "--no-offload"])).offload)
        #expect(try !ForwardCommand.forwarderOptions(parsed(["-url", "stdio:"])).offload)
        let qemu = try ForwardCommand.forwarderOptions(parsed(["-url", "unix:///a.sock", "--protocol", "qemu",
                                                                "--resolv-conf", "none", "-stop-if-exist", " eth1, ,lo"]))
        #expect(qemu.framing == .qemu && !qemu.offload && qemu.resolvConf == nil && qemu.stopIfExist == ["eth1", "lo"])
    }

    @Test func helpNamesEveryOptionWithinEightyColumns() {
        let help = ForwardCommand.spec.helpText(program: "sovnet-guest")
        #expect(help.contains("USAGE: sovnet-guest forward [<options>]"))
        for option in ForwardCommand.spec.options {
            #expect(help.contains("--\(option.name)"), "\(option.name)")
        }
        #expect(help.contains("-url, --url <url>") && help.contains("(default:") && help.contains("vsock://2:1024/connect)"))
        #expect(help.split(separator: "\n").allSatisfy { $0.count <= 80 }, "\(help)")
        #expect(InitCommand.spec.helpText(program: "sovnet").contains("--log-level <level>"))
    }
}
