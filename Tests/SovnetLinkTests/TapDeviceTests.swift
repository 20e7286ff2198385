import CSovnetShim
import Dispatch
import Foundation
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

    @Test func aFrameTheKernelRefusesIsCountedNotFatal() throws {
        // In a network namespace of its own (one thread), so the tap's frames reach no stack but that one.
        nonisolated(unsafe) var outcome: (refused: Int, error: String?) = (0, nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            guard sovnet_unshare_network() == 0 else { return outcome.error = "unshare: \(errno)" }
            do {
                let tap = try TapDevice(name: "tap0", virtioHeaders: true)
                var request = ifreq()
                withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { $0.copyBytes(from: Array("tap0".utf8)) }
                let control = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                defer { Glibc.close(control) }
                request.ifr_ifru.ifru_flags = Int16(IFF_UP)
                guard ioctl(control, UInt(SIOCSIFFLAGS), &request) == 0 else { return outcome.error = "up: \(errno)" }
                var frame: [UInt8] = []
                EthernetHeader(destination: .broadcast, source: MACAddress(2, 0, 0, 0, 0, 1), etherType: .ipv4).emit(into: &frame)
                frame += [UInt8](repeating: 0, count: 46)
                // A virtio-net header with a segmentation type no kernel knows, then a plain one.
                let bogus: [UInt8] = [0, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0] + frame
                let plain = VirtioNetHeader.plain + frame
                try bogus.withUnsafeBytes { bad in try plain.withUnsafeBytes { good in try tap.send([bad, good]) } }
                outcome.refused = tap.drops.refused
            } catch {
                outcome.error = "\(error)"
            }
        }
        thread.start()
        done.wait()
        #expect(outcome.error == nil)
        #expect(outcome.refused == 1)
    }

    @Test func badNameIsAnError() {
        #expect(throws: LinkError.self) { _ = try TapDevice(name: String(repeating: "x", count: 20)) }
    }
}
