import Glibc
import SovnetWire
import Testing
@testable import SovnetLink

/// Needs root and /dev/net/tun; CI runs as root. The tap is created down,
/// without addresses, and disappears when its descriptor closes.
@Suite(.enabled(if: runningAsRoot && tunAvailable, "needs root and /dev/net/tun to create a tap device"))
struct TapDeviceTests {
    @Test func createsTapAndSetsMAC() throws {
        let name = "svtest\(getpid() % 100_000)"
        let tap = try TapDevice(name: name)
        #expect(tap.name == name)
        #expect(if_nametoindex(name) > 0)
        let mac = MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE)
        try tap.setMACAddress(mac)
        #expect(try tap.macAddress() == mac)
        #expect(try tap.mtu() == 1500)
        // Nothing is sent by a tap that is down: a non-blocking read finds nothing.
        #expect(try tap.receive { _ in } == .wouldBlock)
        tap.close()
        #expect(if_nametoindex(name) == 0)
    }

    @Test func badNameIsAnError() {
        #expect(throws: LinkError.self) { _ = try TapDevice(name: String(repeating: "x", count: 20)) }
    }
}
