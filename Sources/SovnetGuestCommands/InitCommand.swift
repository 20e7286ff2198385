// `sovnet init`: the guest's PID 1, also run as `/sbin/sovnet-init`.
import Logging
import SovnetGuest

/// `sovnet init`: its command line, and the init it becomes.
public enum InitCommand {
    public static let spec = CommandSpec(
        name: "init",
        abstract: "PID 1 for a guest: mounts, modules, sovnet forward and the services of /etc/sovnet/services.",
        discussion: "Boot the guest with init=/sbin/sovnet-init (rdinit= for an initramfs), which "
            + "`sovnet guest install` links to this binary. It starts sovnet forward with the arguments "
            + "in /etc/sovnet/forward, then each line of /etc/sovnet/services, restarts them when they "
            + "exit, reaps orphans, and on SIGTERM, poweroff or the power button stops them in reverse "
            + "order, syncs and powers off. See docs/guest.md.",
        options: [OptionSpec("debug", .toggle, help: "Log every reaped orphan and other details.")] + LogSettings.options
    )

    public static let command = RunnableCommand(spec: spec) { (options) throws(CommandFailure) in
        do throws(UsageError) {
            try LogSettings.bootstrap(options, default: options.isOn("debug") ? .debug : .info)
        } catch {
            throw .usage(error)
        }
        do throws(GuestInit.Failure) {
            try GuestInit(logger: Logger(label: "sovnet.init"), version: SovnetVersion.string).run()
        } catch {
            throw .failed(error.description)
        }
    }
}
