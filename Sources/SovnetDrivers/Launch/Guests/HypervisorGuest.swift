// The `qemu` and `crosvm` guests: one hypervisor process whose standard
// output is the guest console's log (crosvm's console goes to stdout; QEMU
// writes its console log itself). Stopping asks nicely first: crosvm gets
// `crosvm powerbtn` on its control socket, then `crosvm stop`; QEMU gets
// `system_powerdown` on its monitor (the guest's power button), then SIGTERM. Their exit statuses are explained in the user's terms.
import Foundation
import Glibc

/// A VM run by QEMU or crosvm.
public final class HypervisorGuest: LaunchedGuest {
    private let configuration: LaunchConfiguration
    private let runDirectory: String
    private let arguments: [String]
    public private(set) var process: ChildProcess?

    public init(configuration: LaunchConfiguration, runDirectory: String, arguments: [String]) {
        self.configuration = configuration
        self.runDirectory = runDirectory
        self.arguments = arguments
    }

    private var kind: LaunchConfiguration.Kind { configuration.guest.kind }

    public var summary: String { "\(kind)" + (process.map { " pid \($0.pid)" } ?? "") }

    /// The hypervisor's own output (crosvm's includes the console).
    var processLog: String { runDirectory + "/\(kind).log" }

    public func start() throws {
        unlink(processLog)
        if kind == .qemu {
            unlink(QemuCommand.consoleLog(runDirectory: runDirectory))
            unlink(QemuCommand.bootLog(runDirectory: runDirectory))
        }
        process = try ChildProcess(arguments, log: processLog)
    }

    public func leased() throws {}

    public func ended(status: Int32) -> (ok: Bool, message: String) {
        if kind == .crosvm { return CrosvmExit.describe(status) }
        return status == 0 ? (true, "the guest powered off") : (false, "qemu exited with status \(status)")
    }

    public func consoleTail(lines: Int) -> String {
        guard kind == .qemu else { return LogFile.tail(processLog, lines: lines) }
        let boot = LogFile.tail(QemuCommand.bootLog(runDirectory: runDirectory), lines: lines)
        return [LogFile.tail(QemuCommand.consoleLog(runDirectory: runDirectory), lines: lines),
                boot.isEmpty ? "" : "kernel messages (boot.log):\n" + boot, LogFile.tail(processLog, lines: 5)]
            .filter { !$0.isEmpty }.joined(separator: "\n")
    }

    public func stop() {
        guard let process, process.isRunning else { return }
        let timeout = Double(configuration.guest.stopTimeout ?? 20)
        if kind == .crosvm {
            let control = runDirectory + "/crosvm-control.log"
            _ = try? ChildProcess(CrosvmCommand.control("powerbtn", binary: configuration.guest.binary, runDirectory: runDirectory),
                                  log: control).wait(seconds: 5)
            if process.wait(seconds: timeout) != nil { return }
            _ = try? ChildProcess(CrosvmCommand.control("stop", binary: configuration.guest.binary, runDirectory: runDirectory),
                                  log: control).wait(seconds: 5)
            if process.wait(seconds: 5) != nil { return }
        }
        if kind == .qemu {
            do {
                try QemuMonitor.powerDown(socket: QemuCommand.monitorSocket(runDirectory: runDirectory))
                if process.wait(seconds: timeout) != nil { return }
            } catch {
                // QEMU without its monitor (or a guest that ignores the button): SIGTERM below.
            }
        }
        process.stop(SIGTERM, grace: 10)
    }
}
