import Foundation
import Testing

/// The packet loops with busy polling off (`--busy-poll 0` on both sides):
/// they sleep between every event, as before polling, and carry the same
/// traffic. Every other end-to-end test runs them with the default window.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"), .serialized)
final class SleepingLoopTests {
    @Test func withoutBusyPollingTheLoopsStillCarryEverything() throws {
        let lab = try ProxyLab("nopoll", proxyArguments: { _ in "--busy-poll 0" }, forwardArguments: "--busy-poll 0")
        try lab.server(lab.host, "echo-server 127.0.0.1 7050")
        #expect(try lab.client(lab.guest, "echo 192.168.127.254 7050 --size 2000000") == "ok")
        #expect(try lab.client(lab.guest, "many 192.168.127.254 7050 --count 20 --size 2000") == "20 of 20 ok")
        let ping = try lab.guest.run("ping -c 3 -i 0.2 -W 2 192.168.127.1 || true")
        #expect(ping.contains(" 0% packet loss"), "\(ping)")
    }
}
