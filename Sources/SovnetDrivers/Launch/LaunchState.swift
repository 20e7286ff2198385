// What a running `sovnet up` leaves in its run directory for `sovnet
// status`, `sovnet check` and `sovnet down`: state.json (who runs, where
// the API is, the configuration and the last check results), beside the
// sockets and logs. The run directory is /run/sovnet/NAME for root, else
// $XDG_RUNTIME_DIR/sovnet/NAME (or /tmp/sovnet-UID/NAME).
import Foundation
import Glibc

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

    /// Whether the launcher that wrote the state still runs.
    public var launcherAlive: Bool { Self.isRunning(launcherPID) }

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
