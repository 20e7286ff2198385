// The `netns` guest: a fresh network namespace (`ip netns add`, so the
// user can `ip netns exec sovnet-NAME …` into it) holding `sovnet-guest forward`
// on tap0, connected to the proxy's unix socket, and the services listed in
// the configuration, started once the lease is in. Its resolv.conf is
// /etc/netns/NAME/resolv.conf, so the forwarder never touches the host's.
import Foundation
import Glibc

/// A network namespace as a guest.
public final class NetnsGuest: LaunchedGuest {
    public let namespace: String
    private let configuration: LaunchConfiguration
    private let runDirectory: String
    private let networkURL: String
    public private(set) var process: ChildProcess?
    private var services: [ChildProcess] = []

    public init(configuration: LaunchConfiguration, runDirectory: String, networkURL: String) {
        namespace = "sovnet-\(configuration.name)"
        self.configuration = configuration
        self.runDirectory = runDirectory
        self.networkURL = networkURL
    }

    public var summary: String { "netns \(namespace)" + (process.map { ", forward pid \($0.pid)" } ?? "") }

    /// Where the namespace's resolv.conf lives on the host.
    var resolvConfDirectory: String { "/etc/netns/\(namespace)" }

    public func start() throws {
        if FileManager.default.fileExists(atPath: "/run/netns/\(namespace)") {
            let pids = try run(["ip", "netns", "pids", namespace]).split(whereSeparator: \.isNewline)
            guard pids.isEmpty else {
                throw LaunchError("namespace \(namespace) exists and processes \(pids.joined(separator: ", ")) run in it: "
                                  + "`sovnet down --name \(configuration.name)` first")
            }
            _ = try run(["ip", "netns", "delete", namespace])
        }
        _ = try run(["ip", "netns", "add", namespace])
        _ = try run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        try FileManager.default.createDirectory(atPath: resolvConfDirectory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: resolvConfDirectory + "/resolv.conf", contents: Data())
        process = try ChildProcess(["ip", "netns", "exec", namespace, Executable.guestProgram(), "forward",
                                    "-url", networkURL, "-iface", "tap0", "-mac", configuration.guestMAC.description],
                                   log: runDirectory + "/guest.log")
    }

    public func leased() throws {
        for (index, command) in (configuration.guest.services ?? []).enumerated() {
            services.append(try ChildProcess(["ip", "netns", "exec", namespace, "/bin/sh", "-c", "exec " + command],
                                             log: runDirectory + "/service-\(index + 1).log"))
        }
    }

    public func ended(status: Int32) -> (ok: Bool, message: String) {
        (false, "sovnet forward in \(namespace) exited with status \(status)")
    }

    public func consoleTail(lines: Int) -> String { LogFile.tail(runDirectory + "/guest.log", lines: lines) }

    public func stop() {
        for service in services.reversed() { service.stop() }
        services.removeAll()
        process?.stop()
        Self.remove(namespace: namespace, runDirectory: runDirectory)
    }

    /// The processes in the network namespace `file` stands for (a
    /// /run/netns entry, or a process's /proc/PID/ns/net), as `ip netns
    /// pids` finds them: those whose /proc/PID/ns/net is the same namespace.
    public static func processes(inNamespaceOf file: String) -> [Int32] {
        var target = stat()
        guard stat(file, &target) == 0,
              let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry) else { return nil }
            var own = stat()
            guard stat("/proc/\(pid)/ns/net", &own) == 0, own.st_ino == target.st_ino, own.st_dev == target.st_dev else {
                return nil
            }
            return pid
        }.sorted()
    }

    /// Deletes the namespace and its resolv.conf (also for `sovnet down` after a crash).
    public static func remove(namespace: String, runDirectory: String) {
        if FileManager.default.fileExists(atPath: "/run/netns/\(namespace)") {
            _ = try? ChildProcess(["ip", "netns", "delete", namespace], log: runDirectory + "/ip.log").wait(seconds: 10)
        }
        try? FileManager.default.removeItem(atPath: "/etc/netns/\(namespace)")
    }

    /// Runs a short command to its end; its output, or an error with it.
    private func run(_ arguments: [String]) throws -> String {
        let log = runDirectory + "/ip.log"
        unlink(log)
        let child = try ChildProcess(arguments, log: log)
        let status = child.wait(seconds: 10) ?? { child.stop(); return -1 }()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw LaunchError("\(arguments.joined(separator: " ")) failed (\(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return output
    }
}
