import Foundation
import Testing

/// Runs the built `sovnet` binary as a user would.
@Suite struct CommandLineTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The `sovnet` executable next to the test bundle in the build folder.
    static var binary: URL {
        var directory = Bundle.main.bundleURL
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("sovnet").path),
              directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("sovnet")
    }

    func run(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = arguments
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @Test func helpListsEverySubcommand() throws {
        let result = try run(["--help"])
        #expect(result.status == 0)
        for command in ["forward", "proxy", "up", "down", "status", "check", "doctor", "pcap", "bench", "guest", "init"] {
            #expect(result.output.contains("  \(command) "), "\(command) missing from --help")
        }
    }

    @Test func version() throws {
        let result = try run(["--version"])
        #expect(result.status == 0)
        #expect(result.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
    }

    /// Linked as `gvproxy` or `gvforwarder` (where podman or a guest image
    /// looks for them), the binary is `sovnet proxy` or `sovnet forward`.
    @Test func runAsGvproxyOrGvforwarder() throws {
        let directory = uniqueTemporaryPath("standin")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for name in ["gvproxy", "gvforwarder"] {
            try FileManager.default.createSymbolicLink(atPath: "\(directory)/\(name)", withDestinationPath: Self.binary.path)
        }
        let proxy = try shell("\(directory)/gvproxy -version")
        #expect(proxy.hasPrefix("sovnet proxy version 0.1.0"), "\(proxy)")
        let forward = try shell("\(directory)/gvforwarder --help")
        #expect(forward.contains("USAGE: sovnet forward"), "\(forward)")
    }

    /// Usage errors: the subcommand's own usage line and 64. Failures while
    /// running: one line naming the user's path, status 1, no usage.
    @Test func usageErrorsAndRuntimeFailuresAreTold() throws {
        let nothing = try run(["proxy"])
        #expect(nothing.status == 64 && nothing.error.contains("nothing to listen on"), "\(nothing)")
        #expect(nothing.error.contains("Usage: sovnet proxy"), "the subcommand's usage: \(nothing.error)")
        let mac = try run(["forward", "-mac", "zz"])
        #expect(mac.status == 64 && mac.error.contains("want six hexadecimal pairs, such as 5a:94:ef:e4:0c:ee"), "\(mac)")
        #expect(mac.error.contains("Usage: sovnet forward"), "\(mac.error)")
        let directory = try run(["proxy", "-listen", "unix:///tmp/sovnet-unused.sock", "-config", "/tmp"])
        #expect(directory.status == 1 && directory.error.contains("cannot read -config /tmp: Is a directory"), "\(directory)")
        #expect(!directory.error.contains("Usage") && !directory.error.contains("NSCocoaErrorDomain"), "\(directory.error)")
        let socket = try run(["proxy", "-listen", "unix:///nonexistent-sovnet-dir/vm.sock"])
        #expect(socket.status == 1 && socket.error.contains("bind /nonexistent-sovnet-dir/vm.sock"), "the path given: \(socket)")
        let bench = try run(["bench", "--json", "/nonexistent-sovnet-dir/bench.json"])
        #expect(bench.status == 1 && bench.error.contains("cannot write --json /nonexistent-sovnet-dir/bench.json"),
                "checked before the run: \(bench)")
        let busyPoll = try run(["proxy", "-listen", "unix:///tmp/sovnet-unused.sock", "--busy-poll", "10001"])
        #expect(busyPoll.status == 64 && busyPoll.error.contains("--busy-poll must be 0 to 10000 microseconds"), "\(busyPoll)")
        let help = try run(["help", "nosuch"])
        #expect(help.status == 64 && help.error.contains("no subcommand 'nosuch'"), "\(help)")
        #expect(try run(["help", "proxy"]).status == 0)
    }

    @Test func upRefusesAnIncompleteGuestBeforeStartingAnything() throws {
        let result = try run(["up", "--guest", "qemu", "--name", "incomplete"])
        #expect(result.status == 64)
        #expect(result.error.contains("guest.kernel is needed for a qemu guest"))
    }

    @Test func forwardExitsQuietlyWhenTheGuestHasANetwork() throws {
        let result = try run(["forward", "-stop-if-exist", "nonexistent0,lo", "-url", "unix:///nonexistent.sock"])
        #expect(result.status == 0)
        #expect(result.error.contains("interface lo exists"))
    }

    @Test func forwardRejectsBadFlags() throws {
        for arguments in [["-mac", "zz:zz"], ["--static", "10.0.0.2/24"], ["-url", "ftp://x"], ["--protocol", "bess"]] {
            let result = try run(["forward", "-stop-if-exist", ""] + arguments)
            #expect(result.status == 64, "\(arguments): \(result.error)")
        }
    }

    /// Without /dev/net/tun (hidden by a tmpfs in a private mount namespace)
    /// the error names the kernel option to enable.
    @Test(.enabled(if: geteuid() == 0, "needs root for a private mount namespace"))
    func forwardNamesConfigTunWhenTunIsMissing() throws {
        let log = NSTemporaryDirectory() + "sovnet-notun-\(getpid()).log"
        defer { unlink(log) }
        let child = try Spawned("unshare -m sh -c 'mount -t tmpfs none /dev/net && exec \(Self.binary.path) forward "
                                + "-stop-if-exist \"\" -url unix:///nonexistent.sock'", log: log)
        #expect(child.wait(10) == 1)
        #expect(child.output.contains("CONFIG_TUN"), "\(child.output)")
    }

    /// Shell completions offer files where a file is asked for, directories
    /// where a directory is, and captures for `pcap summary`.
    @Test func completionsCompletePaths() throws {
        let bash = try run(["--generate-completion-script", "bash"])
        #expect(bash.status == 0)
        let lines = bash.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        func completion(after label: String) -> String? {
            lines.firstIndex(of: label).map { lines[$0 + 1] }
        }
        for label in ["'-config'|'--config')", "'-pcap'|'--pcap')", "'-log-file'|'--log-file')", "'--kernel-config')",
                      "'--forward-known-hosts')", "'--json')", "'--chart')"] {
            #expect(completion(after: label) == "__sovnet_add_completions -f", "\(label)")
        }
        for label in ["'--rootfs')", "'--run-dir')", "'--guest-socket-dir')"] {
            #expect(completion(after: label) == "__sovnet_add_completions -d", "\(label)")
        }
        #expect(bash.output.contains("-fX '!*.@(pcap|pcapng)'"), "pcap summary's file argument")
        let zsh = try run(["--generate-completion-script", "zsh"]).output
        #expect(zsh.contains(":pid-file:_files'"))
    }

    @Test func pcapSummaryPrintsTheGoldenLines() throws {
        let capture = Self.root.appendingPathComponent("captures/dhcp-udhcpc.pcap").path
        let golden = try String(contentsOf: Self.root.appendingPathComponent("Tests/SovnetDriversTests/Golden/dhcp-udhcpc.txt"),
                                encoding: .utf8)
        let result = try run(["pcap", "summary", capture])
        #expect(result.status == 0)
        #expect(result.output == golden)
    }

    @Test func pcapSummaryFilter() throws {
        let capture = Self.root.appendingPathComponent("captures/gvproxy-v0.6.2-guest-tap.pcap").path
        let result = try run(["pcap", "summary", capture, "--filter", "tcp[tcpflags] & tcp-rst != 0"])
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasSuffix("Flags [R.], seq 0, ack 230273133, win 0, length 0"))
        #expect(lines[1] == "1 frames, 54 bytes in 0.000 s: TCP 1")
    }

    /// As tcpdump takes them: the filter as the words after the file, -c,
    /// -e, and `-` for a capture on standard input (a live one, piped).
    @Test func pcapSummaryTakesTcpdumpsArguments() throws {
        let capture = Self.root.appendingPathComponent("captures/gvproxy-v0.6.2-guest-tap.pcap").path
        let trailing = try run(["pcap", "summary", capture, "icmp", "and", "host", "192.168.127.254", "-c", "1", "-e"])
        #expect(trailing.status == 0, "\(trailing.error)")
        #expect(trailing.output == "22:31:05.166952 5a:94:ef:e4:0c:ee > 5a:94:ef:e4:0c:dd, ethertype IPv4 (0x0800), length 98: "
                + "192.168.127.2 > 192.168.127.254: ICMP echo request, id 25889, seq 1, length 64\n"
                + "1 frames, 98 bytes in 0.000 s: ICMP 1\n")
        let piped = try shell("cat \(capture) | \(Self.binary.path) pcap summary - arp")
        #expect(piped.hasSuffix("4 frames, 168 bytes in 0.206 s: ARP 4\n"), "\(piped)")
        let both = try run(["pcap", "summary", capture, "arp", "--filter", "icmp"])
        #expect(both.status == 64 && both.error.contains("not both"), "\(both.error)")
        let socket = NSTemporaryDirectory() + "sovnet-live-\(getpid()).sock"
        defer { unlink(socket) }
        let live = try shell("timeout -s TERM 2 \(Self.binary.path) proxy -listen unix://\(socket) -pcap - -ssh-port -1 "
                             + "--dns-upstream 127.0.0.1:5353 --resolv-conf /dev/null 2>/dev/null "
                             + "| \(Self.binary.path) pcap summary -", seconds: 10)
        #expect(live == "0 frames, 0 bytes in 0.000 s\n", "a live capture on standard output reads as one: \(live)")
        let none = try run(["pcap", "summary", capture, "-c", "0"])
        #expect(none.status == 64 && none.error.contains("-c wants a count of at least 1"), "\(none.error)")
    }

    @Test func pcapSummaryErrorsAreClear() throws {
        let missing = try run(["pcap", "summary", "/nonexistent.pcap"])
        #expect(missing.status != 0)
        #expect(missing.error.contains("cannot open capture /nonexistent.pcap"))
        let capture = Self.root.appendingPathComponent("captures/dns.pcap").path
        let badFilter = try run(["pcap", "summary", capture, "--filter", "port banana"])
        #expect(badFilter.status != 0)
        #expect(badFilter.error.contains("bad capture filter 'port banana'"))
    }
}
