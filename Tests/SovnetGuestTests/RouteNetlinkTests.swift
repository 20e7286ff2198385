import CSovnetShim
import Foundation
import Glibc
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetGuest

/// rtnetlink against the real kernel, inside a private network namespace
/// that one thread enters with unshare(CLONE_NEWNET); the rest of the machine
/// never sees the tap, the address or the route.
@Suite(.enabled(if: geteuid() == 0, "needs root to create a network namespace"))
struct RouteNetlinkTests {
    struct Observed {
        var routesAfterSetup = ""
        var mtu = 0
        var routesAfterRemoval = ""
        var error: String?
    }

    /// Runs `body` on a thread inside a new network namespace.
    func inPrivateNamespace(_ body: @escaping @Sendable () throws -> Observed) throws -> Observed {
        nonisolated(unsafe) var result = Observed()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            if sovnet_unshare_network() != 0 {
                result.error = "unshare: \(errno)"
            } else {
                do { result = try body() } catch { result.error = "\(error)" }
            }
            done.signal()
        }
        thread.start()
        done.wait()
        return result
    }

    @Test func configuresLinkAddressAndDefaultRoute() throws {
        let observed = try inPrivateNamespace {
            var observed = Observed()
            let tap = try TapDevice(name: "tap0")
            let netlink = try RouteNetlink()
            let index = try #require(RouteNetlink.interfaceIndex("tap0"))
            let address = IPv4Address(192, 168, 127, 2)
            let gateway = IPv4Address(192, 168, 127, 1)
            try netlink.setLinkUp(index: index, mtu: 4000)
            try netlink.addAddress(address, prefixLength: 24, index: index)
            try netlink.replaceDefaultRoute(via: gateway, index: index)
            // Doing it again replaces rather than fails.
            try netlink.addAddress(address, prefixLength: 24, index: index)
            try netlink.replaceDefaultRoute(via: gateway, index: index)
            observed.routesAfterSetup = try String(contentsOfFile: "/proc/thread-self/net/route", encoding: .utf8)
            observed.mtu = try tap.mtu()
            try netlink.removeDefaultRoute(via: gateway, index: index)
            try netlink.removeAddress(address, prefixLength: 24, index: index)
            try netlink.removeAddress(address, prefixLength: 24, index: index)
            observed.routesAfterRemoval = try String(contentsOfFile: "/proc/thread-self/net/route", encoding: .utf8)
            return observed
        }
        #expect(observed.error == nil)
        #expect(observed.mtu == 4000)
        // /proc/net/route: little-endian hex. Default route via 192.168.127.1, and
        // the connected 192.168.127.0/24 that only exists once the link is up with its address.
        #expect(observed.routesAfterSetup.contains("tap0\t00000000\t017FA8C0"))
        #expect(observed.routesAfterSetup.contains("tap0\t007FA8C0\t00000000"))
        #expect(!observed.routesAfterRemoval.contains("tap0"))
    }

    @Test func localRoutesAreRead() throws {
        nonisolated(unsafe) var routes: [String] = []
        let observed = try inPrivateNamespace {
            let netlink = try RouteNetlink()
            try netlink.setLinkUp(index: try #require(RouteNetlink.interfaceIndex("lo")), mtu: nil)
            let tap = try TapDevice(name: "tap0")
            let index = try #require(RouteNetlink.interfaceIndex("tap0"))
            try netlink.setLinkUp(index: index, mtu: nil)
            try netlink.addAddress(IPv4Address(10, 55, 0, 2), prefixLength: 24, index: index)
            routes = netlink.localRoutes().map { "\($0.0)/\($0.1)" }
            _ = tap
            return Observed()
        }
        #expect(observed.error == nil)
        // What `ip route show table local type local` lists in a namespace with lo up and one address.
        #expect(Set(routes) == ["127.0.0.0/8", "127.0.0.1/32", "10.55.0.2/32"], "\(routes)")
    }

    @Test func kernelErrorsComeBackAsErrno() throws {
        let observed = try inPrivateNamespace {
            var observed = Observed()
            let netlink = try RouteNetlink()
            do {
                try netlink.setLinkUp(index: 999, mtu: nil)
            } catch {
                observed.error = "\(error)"
            }
            return observed
        }
        #expect(observed.error == "netlink set link 999 up: No such device")
    }
}
