import Foundation
import SovnetWire
import Testing
@testable import SovnetDrivers

/// The host's resolv.conf as the proxy reads it, and the watcher that
/// follows it through the ways it is replaced.
@Suite struct HostResolversTests {
    @Test func nameserversAndSearchDomains() {
        let parsed = HostResolvConf(parsing: """
            # written by NetworkManager
            nameserver 10.0.0.53
            nameserver fd00::53
            nameserver fe80::1%lo
            nameserver 10.0.0.53
            nameserver not-an-address
            ; a comment
            domain old.test
            search corp.test lab.test
            options edns0
            """)
        #expect(parsed.nameservers.map(\.description) == ["10.0.0.53:53", "[fd00::53]:53", "[fe80::1%lo]:53"])
        #expect(parsed.nameservers.map(\.isIPv6) == [false, true, true])
        #expect(parsed.searchDomains == ["corp.test", "lab.test"], "the last search or domain line wins")
    }

    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1:53"), ("127.0.0.1:5353", "127.0.0.1:5353"), ("::1", "[::1]:53"),
        ("[::1]:5353", "[::1]:5353"), ("fd00::1", "[fd00::1]:53"),
    ])
    func resolverAddresses(text: String, expected: String) {
        #expect(ResolverAddress(text)?.description == expected)
    }

    @Test(arguments: ["", "example.com", "1.2.3.4:0", "[::1", "[::1]x", "[nope]:53", "1.2.3.4:99999"])
    func notResolverAddresses(text: String) {
        #expect(ResolverAddress(text) == nil)
    }

    @Test func theWatcherFollowsRenamesAndRelinks() throws {
        let directory = NSTemporaryDirectory() + "sovnet-resolv-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/resolv.conf"
        try "nameserver 10.0.0.1\nsearch a.test\n".write(toFile: directory + "/a.conf", atomically: false, encoding: .utf8)
        try "nameserver fd00::2\nsearch b.test\n".write(toFile: directory + "/b.conf", atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "a.conf")
        var watcher = ResolvConfWatcher(path: path)
        #expect(watcher.current.nameservers.map(\.description) == ["10.0.0.1:53"])
        #expect(watcher.poll() == nil, "nothing changed")

        // systemd-resolved and VPNs point the link elsewhere.
        try FileManager.default.createSymbolicLink(atPath: directory + "/next", withDestinationPath: "b.conf")
        #expect(rename(directory + "/next", path) == 0)
        #expect(watcher.poll()?.nameservers.map(\.description) == ["[fd00::2]:53"])
        #expect(watcher.current.searchDomains == ["b.test"])

        // NetworkManager writes a new file and renames it over.
        try "nameserver 10.0.0.3\n".write(toFile: directory + "/new", atomically: false, encoding: .utf8)
        #expect(rename(directory + "/new", path) == 0)
        #expect(watcher.poll()?.nameservers.map(\.description) == ["10.0.0.3:53"])

        // The same content written again is no change; an edit in place is.
        try "nameserver 10.0.0.3\n".write(toFile: directory + "/same", atomically: false, encoding: .utf8)
        #expect(rename(directory + "/same", path) == 0)
        #expect(watcher.poll() == nil)
        let handle = try #require(FileHandle(forUpdatingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("nameserver 10.0.0.4\n".utf8))
        try handle.close()
        #expect(watcher.poll()?.nameservers.map(\.description) == ["10.0.0.3:53", "10.0.0.4:53"])

        // A missing file is no resolvers.
        #expect(unlink(path) == 0)
        #expect(watcher.poll() == HostResolvConf())
    }
}
