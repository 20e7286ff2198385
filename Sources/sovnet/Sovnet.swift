// The `sovnet` command: parses options and hands them to the drivers.
import ArgumentParser
import Logging

@main
struct Sovnet: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "sovnet",
        abstract: "User-mode networking for virtual machines, wire-compatible with gvisor-tap-vsock.",
        discussion: """
            forward runs in the guest (replaces gvforwarder); proxy runs on the host \
            (replaces gvproxy); up boots a guest and checks that it is reachable.
            """,
        version: version,
        subcommands: [
            ForwardCommand.self, ProxyCommand.self, UpCommand.self, DownCommand.self, StatusCommand.self,
            CheckCommand.self, DoctorCommand.self, PcapCommand.self, BenchCommand.self,
        ]
    )
}

/// Logs to standard error at `level` and above, one line per event.
func bootstrapLogging(level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}
