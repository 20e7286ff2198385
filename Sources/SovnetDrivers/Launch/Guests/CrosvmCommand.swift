// The crosvm command line for a guest, as the Android Virtualization
// Framework's crosvm (or crosvm on Linux) takes it: the console on a virtio
// console port wired to standard output and input (hvc0, which the field
// deployment needed), the root disk, the kernel parameters, a control socket
// for `crosvm stop`, and a vsock device whose CID the guest's
// `sovnet forward -url vsock://2:1024/connect` reaches the host from; or,
// with the serial transport, a second virtio console port (hvc1) that
// crosvm connects to the proxy's serial socket, for
// `sovnet forward -url serial:///dev/hvc1`.

/// Builds crosvm's arguments.
public enum CrosvmCommand {
    /// The control socket `crosvm stop` and `crosvm powerbtn` talk to.
    public static func controlSocket(runDirectory: String) -> String { runDirectory + "/vm.sock" }

    /// `crosvm --extended-status run …` for `configuration`.
    public static func arguments(_ configuration: LaunchConfiguration, runDirectory: String) -> [String] {
        let guest = configuration.guest
        var arguments = [guest.binary ?? "crosvm", "--extended-status", "run", "--disable-sandbox",
                         "--mem", "\(guest.memory ?? 1024)", "--cpus", "\(guest.cpus ?? 2)",
                         "--serial", "type=stdout,hardware=virtio-console,console,stdin"]
        if configuration.transport == .serial {
            arguments += ["--serial", "type=unix-stream,path=\(QemuCommand.serialSocket(runDirectory: runDirectory)),"
                          + "hardware=virtio-console,num=2"]
        }
        if let disk = guest.disk { arguments += ["--block", "\(disk),root"] }
        if let initrd = guest.initrd { arguments += ["--initrd", initrd] }
        arguments += ["-p", configuration.kernelParameters, "-s", controlSocket(runDirectory: runDirectory)]
        if configuration.transport != .serial { arguments += ["--vsock", "cid=\(guest.cid ?? 3)"] }
        arguments.append(guest.kernel ?? "")
        return arguments
    }

    /// `crosvm powerbtn` (graceful) or `crosvm stop` for the guest's control socket.
    public static func control(_ verb: String, binary: String?, runDirectory: String) -> [String] {
        [binary ?? "crosvm", verb, controlSocket(runDirectory: runDirectory)]
    }
}

/// What crosvm's exit status means with `--extended-status`.
public enum CrosvmExit {
    public static func describe(_ status: Int32) -> (ok: Bool, message: String) {
        switch status {
        case 0: (true, "the guest powered off")
        case 32: (true, "the guest reset (reboot); crosvm does not restart it: run sovnet up again")
        case 33: (false, "crosvm crashed (exit 33); see its log")
        case 34: (false, "the guest kernel panicked (exit 34); the console tail shows why")
        case 35: (false, "crosvm rejected its arguments (exit 35): check guest.kernel, guest.disk and the kernel parameters")
        case 36: (false, "the guest watchdog fired (exit 36): the guest stopped responding")
        case let code where code > 128: (false, "crosvm was killed by signal \(code - 128)")
        default: (false, "crosvm exited with status \(status)")
        }
    }
}
