import Foundation
import SovnetWire
import Testing
@testable import SovnetGuestCore
@testable import SovnetGuest

@Suite struct ResolvConfTests {
    @Test func contentsFromALease() {
        let lease = DHCPLease(
            address: IPv4Address(192, 168, 127, 2), prefixLength: 24, router: IPv4Address(192, 168, 127, 1),
            dnsServers: [IPv4Address(192, 168, 127, 1), IPv4Address(192, 168, 127, 3)], domainName: "fallback.test",
            searchDomains: ["containers.internal", "example.test"], mtu: nil, server: IPv4Address(192, 168, 127, 1),
            serverMAC: .broadcast, leaseTime: 3600, renewalTime: 1800, rebindingTime: 3150, start: .now)
        let servers = lease.dnsServers.map(IPAddress.v4) + [.v6(IPv6Address("fd00::1")!)]
        let text = ResolvConf.contents(servers: servers, search: ResolvConf.searchDomains(of: lease))
        #expect(text == """
            # Written by sovnet forward from its DHCP lease and router advertisements.
            nameserver 192.168.127.1
            nameserver 192.168.127.3
            nameserver fd00::1
            search containers.internal example.test

            """)
        var withoutSearch = lease
        withoutSearch.searchDomains = []
        #expect(ResolvConf.searchDomains(of: withoutSearch) == ["fallback.test"])
    }

    @Test func replacesTheFileAtomically() throws {
        let directory = NSTemporaryDirectory() + "sovnet-resolv-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/resolv.conf"
        try "nameserver 10.0.0.1\n".write(toFile: path, atomically: false, encoding: .utf8)
        let before = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
        try ResolvConf(path: path).write("nameserver 192.168.127.1\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "nameserver 192.168.127.1\n")
        let after = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? Int
        #expect(before != after, "a new inode: readers see the old file or the new one, never half of it")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["resolv.conf"])
    }
}
