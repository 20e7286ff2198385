// The QEMU command line for a guest: the kernel (and initrd or root disk),
// virtio-net on `-netdev stream` to the proxy's qemu-framed unix socket (or,
// with the serial transport, a second virtio console port, hvc1, on the
// proxy's serial socket), the console on a virtio console port (hvc0)
// written to a log file (or ttyS0, for kernels without a built-in virtio
// console), a QMP socket for a clean power-down, no display, and KVM when
// /dev/kvm is usable, TCG otherwise. With the console on hvc0 the kernel
// also writes to ttyS0, kept as boot.log: a kernel whose virtio console is a
// module has no console of its own until the initramfs loads it, and a
// panic before that (no init, no root) would otherwise leave no trace.
import Glibc

/// Builds QEMU's arguments.
public enum QemuCommand {
    /// The socket the proxy listens on with the qemu framing.
    public static func networkSocket(runDirectory: String) -> String { runDirectory + "/qemu.sock" }
    /// The socket the proxy serves the serial transport on.
    public static func serialSocket(runDirectory: String) -> String { runDirectory + "/serial.sock" }
    /// QEMU's monitor (QMP), for `system_powerdown`.
    public static func monitorSocket(runDirectory: String) -> String { runDirectory + "/qmp.sock" }
    /// Where the guest's console goes.
    public static func consoleLog(runDirectory: String) -> String { runDirectory + "/console.log" }
    /// The kernel's messages on ttyS0, from the first, when the console is hvc0.
    public static func bootLog(runDirectory: String) -> String { runDirectory + "/boot.log" }

    /// Whether /dev/kvm can be opened for reading and writing.
    public static var kvmUsable: Bool {
        let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// The accelerator for `accel` (auto picks KVM when usable).
    public static func accelerator(_ accel: String?, kvmUsable: Bool) -> String {
        switch accel ?? "auto" {
        case "kvm": "kvm"
        case "tcg": "tcg"
        default: kvmUsable ? "kvm" : "tcg"
        }
    }

    /// `qemu-system-x86_64 …` for `configuration`.
    public static func arguments(_ configuration: LaunchConfiguration, runDirectory: String, kvmUsable: Bool,
                                 networkSocket: String? = nil) -> [String] {
        let guest = configuration.guest
        let accel = accelerator(guest.accel, kvmUsable: kvmUsable)
        let log = consoleLog(runDirectory: runDirectory)
        var arguments = [guest.binary ?? "qemu-system-x86_64", "-M", "q35", "-accel", accel,
                         "-m", "\(guest.memory ?? 256)", "-smp", "\(guest.cpus ?? 1)",
                         "-nographic", "-nodefaults", "-no-reboot", "-kernel", guest.kernel ?? ""]
        if accel == "kvm" { arguments += ["-cpu", "host"] }
        if let initrd = guest.initrd { arguments += ["-initrd", initrd] }
        if let disk = guest.disk {
            arguments += ["-drive", "file=\(disk),if=virtio,format=raw"]
        }
        let serial = configuration.transport == .serial
        if guest.console == "ttyS0" {
            arguments += ["-append", configuration.kernelParameters, "-serial", "file:\(log)"]
            if serial { arguments += ["-device", "virtio-serial-pci"] }
        } else {
            // The last console= is /dev/console; the first only mirrors the kernel's messages.
            arguments += ["-append", "console=ttyS0 " + configuration.kernelParameters,
                          "-serial", "file:\(bootLog(runDirectory: runDirectory))",
                          "-chardev", "file,id=console,path=\(log)", "-device", "virtio-serial-pci",
                          "-device", "virtconsole,chardev=console"]
        }
        if serial {
            arguments += ["-chardev", "socket,id=net0,path=\(networkSocket ?? serialSocket(runDirectory: runDirectory)),reconnect=1",
                          "-device", "virtconsole,chardev=net0,name=sovnet.net"]
        } else {
            arguments += ["-netdev", "stream,id=net0,server=off,addr.type=unix,addr.path=\(networkSocket ?? Self.networkSocket(runDirectory: runDirectory))",
                          "-device", "virtio-net-pci,netdev=net0,mac=\(configuration.guestMAC)"]
        }
        arguments += ["-qmp", "unix:\(monitorSocket(runDirectory: runDirectory)),server=on,wait=off"]
        return arguments
    }
}
