// What a running `sovnet up` leaves in its run directory for `sovnet
// status`, `sovnet check` and `sovnet down`: state.json (who runs, where
// the API is, the configuration and the last check results), beside the
// sockets and logs. The run directory is /run/sovnet/NAME for root, else
// $XDG_RUNTIME_DIR/sovnet/NAME (or /tmp/sovnet-UID/NAME).
import Foundation
import Glibc
import SovnetGuest

/// The state of one launched guest.
public struct LaunchState: Codable, Sendable {
    public var configuration: LaunchConfiguration
    public var launcherPID: Int32
    public var guestPID: Int32?
    /// The control API endpoint (`unix:///run/sovnet/NAME/api.sock`).
    public var api: String
    public var namespace: String?
    public var started: Date
    public var report: LaunchReport?

    public static func path(runDirectory: String) -> String { runDirectory + "/state.json" }

    /// The run directory of the guest called `name`.
    public static func runDirectory(name: String) -> String {
        if getuid() == 0 { return "/run/sovnet/\(name)" }
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            return "\(runtime)/sovnet/\(name)"
        }
        return "/tmp/sovnet-\(getuid())/\(name)"
    }

    public static func load(runDirectory: String) throws -> LaunchState {
        let path = path(runDirectory: runDirectory)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LaunchError("no guest is up here: \(path) does not exist")
        }
        do {
            return try JSONDecoder.withDates.decode(LaunchState.self, from: data)
        } catch {
            throw LaunchError("\(path): \(error)")
        }
    }

    public func save(runDirectory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try AtomicFile(path: Self.path(runDirectory: runDirectory)).write(String(decoding: try encoder.encode(self), as: UTF8.self))
    }

    /// Whether the launcher that wrote the state still runs: it holds the
    /// run directory's `LaunchLock`.
    public static func launcherRuns(runDirectory: String) -> Bool {
        LaunchLock.isHeld(runDirectory: runDirectory)
    }

    /// The processes a launcher that died left running: the guest's process
    /// (if it is the one started after this launch began, not another that
    /// took its number) and, for a netns guest, every process in its
    /// namespace, found by its /run/netns entry or, where this mount
    /// namespace does not show that, through the guest's process.
    public func leftovers() -> [Int32] {
        var pids: Set<Int32> = []
        var guest: Int32?
        if let pid = guestPID, Self.isRunning(pid), let begun = Self.startDate(of: pid),
           begun >= started.addingTimeInterval(-1) {
            pids.insert(pid)
            guest = pid
        }
        if let namespace {
            pids.formUnion(NetnsGuest.processes(inNamespaceOf: "/run/netns/\(namespace)"))
            if let guest { pids.formUnion(NetnsGuest.processes(inNamespaceOf: "/proc/\(guest)/ns/net")) }
        }
        return pids.sorted()
    }

    /// When process `pid` started: its start time after boot, in clock ticks
    /// (/proc/PID/stat's 22nd field), after the boot time (/proc/stat's btime).
    static func startDate(of pid: Int32) -> Date? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")"),
              let boot = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]),
              let btime = boot.split(separator: "\n").first(where: { $0.hasPrefix("btime ") })?.split(separator: " ").last,
              let bootSeconds = Double(btime) else { return nil }
        return Date(timeIntervalSince1970: bootSeconds + ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    /// Whether process `pid` exists and has not ended (a zombie, ended but
    /// not yet reaped by its parent, counts as ended).
    public static func isRunning(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }
}

extension JSONDecoder {
    static var withDates: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
