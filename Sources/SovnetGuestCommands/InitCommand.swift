import ArgumentParser
import Logging
import SovnetGuest

/// `sovnet init`: the guest's PID 1, also run as `/sbin/sovnet-init`.
public struct InitCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "PID 1 for a guest: mounts, modules, sovnet forward and the services of /etc/sovnet/services.",
        discussion: """
            Boot the guest with init=/sbin/sovnet-init (rdinit= for an initramfs), which \
            `sovnet guest install` links to this binary. It starts sovnet forward with the arguments \
            in /etc/sovnet/forward, then each line of /etc/sovnet/services, restarts them when they \
            exit, reaps orphans, and on SIGTERM, poweroff or the power button stops them in reverse \
            order, syncs and powers off. See docs/guest.md.
            """
    )

    @Flag(name: .customLong("debug"), help: "Log every reaped orphan and other details.")
    var debug = false

    @OptionGroup var logging: LoggingOptions

    public func run() throws {
        try Self.reportingUsage { try logging.bootstrap(default: debug ? .debug : .info) }
        try GuestInit(logger: Logger(label: "sovnet.init"), version: SovnetVersion.string).run()
    }
}
