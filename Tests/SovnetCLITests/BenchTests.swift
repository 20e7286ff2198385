import Foundation
import Testing

/// `sovnet bench` runs its whole scenario, briefly, against every stack it
/// knows: sovnet, pasta and slirp4netns (Debian's), and gvisor-tap-vsock
/// through stand-ins (scripts that run sovnet proxy and forward with
/// gvproxy's and gvforwarder's flags: neither is installed here). What is
/// checked is that every figure was measured and that the outputs are whole,
/// never how fast anything was.
@Suite(.enabled(if: canMakeNamespaces && ["iperf3", "pasta", "slirp4netns"].allSatisfy { name in
    ["/usr/bin/", "/usr/sbin/", "/bin/"].contains { FileManager.default.isExecutableFile(atPath: $0 + name) }
}, "needs root, iperf3, pasta and slirp4netns (scripts/test installs them)"))
struct BenchTests {
    @Test func everyStackIsMeasuredAndReported() throws {
        let work = NSTemporaryDirectory() + "sovnet-bench-test-\(getpid())"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        for (name, command) in [("gvproxy", "proxy"), ("gvforwarder", "forward")] {
            try "#!/bin/sh\nexec \(CommandLineTests.binary.path) \(command) \"$@\"\n"
                .write(toFile: "\(work)/\(name)", atomically: true, encoding: .utf8)
            chmod("\(work)/\(name)", 0o755)
        }
        // sovnet four times: its loops sleeping and polling (--busy-poll), each
        // with the guest program beside it and with sovnet-guest (--guest-program).
        let guestProgram = GuestBinaryTests.binary
        let bench = try Spawned("\(CommandLineTests.binary.path) bench --mtu 1500 --runs 1 --time 1 --samples 200 --busy-poll 0,50 "
                                + "--guest-program \(guestProgram) "
                                + "--compare pasta,slirp4netns --gvproxy \(work)/gvproxy --gvforwarder \(work)/gvforwarder "
                                + "--json \(work)/bench.json --chart \(work)/bench.svg", log: work + "/bench.log")
        let status = bench.wait(300)
        #expect(status == 0, "\(bench.output)")
        let data = try #require(FileManager.default.contents(atPath: work + "/bench.json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let results = try #require(report["results"] as? [[String: Any]])
        let stacks = ["sovnet --busy-poll 0", "sovnet --busy-poll 0, guest \(guestProgram)", "sovnet --busy-poll 50",
                      "sovnet --busy-poll 50, guest \(guestProgram)", "gvisor-tap-vsock", "pasta", "slirp4netns", "kernel"]
        #expect(results.compactMap { $0["stack"] as? String } == stacks)
        for result in results {
            let stack = result["stack"] as? String ?? "?"
            #expect((result["errors"] as? [String])?.isEmpty == true, "\(stack): \(result["errors"] ?? "")")
            for direction in ["guestToHost", "hostToGuest"] {
                #expect(((result[direction] as? [Double])?.first ?? 0) > 0, "\(stack) \(direction)")
            }
            for probe in ["icmp", "udp", "tcp"] {
                let summary = result[probe] as? [String: Any]
                #expect((summary?["samples"] as? Int ?? 0) > 100 && (summary?["p50"] as? Double ?? 0) > 0, "\(stack) \(probe)")
            }
            #expect((result["connectionsPerSecond"] as? Double ?? 0) > 0, "\(stack)")
            // The floor has no process of its own and its addresses are set, not obtained.
            if stack == "kernel" {
                #expect(result["hostPeakMB"] == nil && result["addressMilliseconds"] == nil, "the floor: \(result)")
            } else {
                #expect((result["hostPeakMB"] as? Double ?? 0) > 0, "\(stack)")
                #expect((result["addressMilliseconds"] as? Double ?? 0) > 0, "\(stack)")
            }
            let sovnet = stack.hasPrefix("sovnet")
            if sovnet || stack == "gvisor-tap-vsock" {
                #expect((result["guestPeakMB"] as? Double ?? 0) > 0, "\(stack): the forwarder's memory")
            }
            if sovnet {
                #expect((result["leaseMilliseconds"] as? Double ?? 0) > 0, "sovnet forward's DHCP time")
            }
            if sovnet || stack == "kernel" {
                for direction in ["guestToHostIPv6", "hostToGuestIPv6"] {
                    #expect(((result[direction] as? [Double])?.first ?? 0) > 0, "\(stack) \(direction)")
                }
                #expect(((result["tcpIPv6"] as? [String: Any])?["samples"] as? Int ?? 0) > 100, "\(stack)'s TCP over IPv6")
            }
        }
        // The table names every stage's figures, and the chart is whole SVG naming every stack.
        for heading in ["guest→host Gbit/s", "TCP request/response", "connections/s", "host peak MB", "IPv6, to the host's ::1"] {
            #expect(bench.output.contains(heading), "\(heading)")
        }
        let svg = try String(contentsOfFile: work + "/bench.svg", encoding: .utf8)
        let root = try shell("python3 -c 'import sys, xml.etree.ElementTree as t; print(t.parse(sys.argv[1]).getroot().tag)' \(work)/bench.svg")
        #expect(root.contains("{http://www.w3.org/2000/svg}svg"), "well-formed SVG: \(root)")
        for stack in stacks { #expect(svg.contains(">\(stack)</text>"), "\(stack)") }
        // Its namespaces are gone.
        #expect(!(try shell("ip netns list")).contains("svbench"))
    }

    @Test func badOptionsAreRefused() throws {
        for arguments in ["--mtu 100", "--runs 0", "--compare qemu", "--gvproxy /x", "--busy-poll 50,", "--busy-poll 10001",
                          "--guest-program /nonexistent/sovnet-guest"] {
            let bench = try Spawned("\(CommandLineTests.binary.path) bench \(arguments)", log: NSTemporaryDirectory() + "sovnet-bench-bad-\(getpid()).log")
            #expect(bench.wait(10) == 64, "\(arguments): \(bench.output)")
        }
    }
}
