import SovnetWire
import Testing
@testable import SovnetDrivers

/// Port forwards as flags and the API spell them, IPv6 ends in brackets.
@Suite struct PortForwardTests {
    @Test func eitherEndMayBeIPv6() throws {
        let forward = try PortForward.parse("tcp:[::1]:8080=[fd00::5894:efff:fee4:cee]:80")
        #expect(forward.localAddress! == (.v6(.loopback), 8080))
        #expect(forward.remote == .v6(IPv6Address("fd00::5894:efff:fee4:cee")!) && forward.remotePort == 80)
        #expect(forward.description == "tcp:[::1]:8080=[fd00::5894:efff:fee4:cee]:80")
        let mixed = try PortForward.parse("udp::5353=[fd00::2]:53")
        #expect(mixed.local == "0.0.0.0:5353" && mixed.listensOnEveryAddress)
        #expect(try PortForward.parse("tcp:[::]:22=192.168.127.2:22").listensOnEveryAddress)
    }

    @Test func loopbackOnlyConfinesBothFamilies() throws {
        #expect(try PortForward.parse("tcp:[::]:22=192.168.127.2:22").confinedToLoopback().local == "[::1]:22")
        #expect(try PortForward.parse("tcp::22=192.168.127.2:22").confinedToLoopback().local == "127.0.0.1:22")
        #expect(throws: PortForwardError.self) { try PortForward.parse("tcp:[2001:db8::1]:22=192.168.127.2:22").confinedToLoopback() }
    }

    @Test func malformedEndsAreRefused() {
        for text in ["tcp:::1:8080=192.168.127.2:80", "tcp:[::1:8080=192.168.127.2:80", "tcp:127.0.0.1:80=fd00::2:80",
                     "tcp:127.0.0.1:80=[fd00::2]:0", "tcp:[fe80::1%eth0]:80=192.168.127.2:80"] {
            #expect(throws: PortForwardError.self, "\(text)") { try PortForward.parse(text) }
        }
    }
}
