import Foundation
import Testing

/// `sovnet proxy --drop-capabilities` started as root: every thread keeps
/// only CAP_NET_BIND_SERVICE, with no_new_privs, and the proxy still does
/// its whole job: a lease, NAT, ping, a forward on a port below 1024, and a
/// clean exit that removes its socket.
@Suite(.enabled(if: canMakeNamespaces, "needs root and iproute2 to make network namespaces"))
struct HardeningTests {
    @Test func aProxyWithoutCapabilitiesStillServes() throws {
        let lab = try ProxyLab("caps", proxyArguments: { _ in "--drop-capabilities -ssh-port 22" })
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(lab.proxy.pid)/task")
        #expect(tasks.count > 1, "the API's threads are there too")
        for task in tasks {
            let status = try String(contentsOfFile: "/proc/\(lab.proxy.pid)/task/\(task)/status", encoding: .utf8)
            func field(_ name: String) -> String? {
                status.split(separator: "\n").first { $0.hasPrefix(name + ":") }?
                    .split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespaces) }
            }
            for set in ["CapEff", "CapPrm", "CapBnd"] {
                #expect(field(set) == "0000000000000400", "thread \(task) \(set): \(field(set) ?? "none")")
            }
            #expect(field("CapInh") == "0000000000000000" && field("CapAmb") == "0000000000000000")
            #expect(field("NoNewPrivs") == "1", "thread \(task)")
        }
        #expect(try lab.host.run("ss -ltn").contains("127.0.0.1:22 "), "the forward below 1024 listens")
        try lab.server(lab.host, "echo-server 127.0.0.1 7400")
        #expect(try lab.client(lab.guest, "echo 192.168.127.254 7400 --size 1000000") == "ok")
        #expect(try lab.guest.run("ping -c 2 -W 2 192.168.127.1").contains(" 0% packet loss"))
        #expect(lab.proxy.stop() == 0, "\(lab.proxy.output.suffix(500))")
        #expect(!FileManager.default.fileExists(atPath: lab.work + "/vm.sock"))
    }
}
