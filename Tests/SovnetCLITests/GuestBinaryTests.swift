import Foundation
import Testing

/// `sovnet-guest`, the guest's half alone (issue #19): it is sovnet forward
/// and sovnet init without the host's commands, and links neither
/// Foundation (FoundationEssentials at most, for the argument parser) nor
/// SwiftNIO. A real guest namespace takes its lease through it.
@Suite struct GuestBinaryTests {
    static var binary: String { CommandLineTests.binary.deletingLastPathComponent().appendingPathComponent("sovnet-guest").path }

    @Test func itLinksNoFoundationAndNoSwiftNIO() throws {
        let libraries = try shell("ldd \(Self.binary)")
        #expect(!libraries.contains("libFoundation.so") && !libraries.contains("FoundationInternationalization")
                && !libraries.contains("icu"), "\(libraries)")
        let symbols = try shell("nm -C \(Self.binary) | grep -c -E 'NIOCore|NIOPosix|Yams' || true")
        #expect(symbols.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "SwiftNIO or Yams symbols: \(symbols)")
        let help = try shell("\(Self.binary) --help")
        #expect(help.contains("forward") && help.contains("init") && !help.contains("proxy"), "\(help)")
        let usage = try shell("\(Self.binary) forward -mtu 5 2>&1; echo status $?")
        #expect(usage.contains("Usage: sovnet-guest forward") && usage.contains("status 64"), "\(usage)")
    }

    @Test(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"))
    func aGuestTakesItsLeaseThroughIt() throws {
        let lab = try ProxyLab("gbin", forwardArguments: "--no-offload")
        let guest = try TestNamespace("svt-gbin2")
        defer { guest.close() }
        let forward = try Spawned("ip netns exec \(guest.name) env -i \(Self.binary) forward -url unix://\(lab.work)/vm.sock "
                                  + "-mac 02:00:00:00:00:61 -stop-if-exist ''", log: lab.work + "/guest-binary.log")
        defer { forward.stop() }
        #expect(waitUntil(10) { forward.output.contains("lease obtained") }, "\(forward.output)")
        #expect(try guest.run("ping -c 2 -i 0.2 -W 2 192.168.127.1 || true").contains(" 0% packet loss"))
    }
}
