// Where sovnet lives inside a guest's root filesystem: the paths that
// `sovnet guest install` writes and `sovnet-init` reads.
//
//   /usr/bin/sovnet            the binary
//   /sbin/sovnet-init          a link to it; run as PID 1 it is the init
//   /etc/sovnet/forward        the arguments of `sovnet forward` (one line), or `none`
//   /etc/sovnet/services       one service command line per line (ServiceList)
//   /etc/sovnet/modules        kernel modules to load first, one per line (with parameters)
//   /etc/hostname              the host name init sets

/// The paths of sovnet's files in a guest, relative to its root.
public enum GuestLayout {
    public static let binary = "/usr/bin/sovnet"
    public static let initLink = "/sbin/sovnet-init"
    public static let forwardArguments = "/etc/sovnet/forward"
    public static let services = "/etc/sovnet/services"
    public static let modules = "/etc/sovnet/modules"
    public static let hostname = "/etc/hostname"

    /// The name the init answers to when run through its link.
    public static let initName = "sovnet-init"

    /// The search path init gives itself and its services (the field
    /// deployment's init had none, so nothing was found).
    public static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// What `sovnet forward` is given when /etc/sovnet/forward is missing:
    /// gvforwarder's defaults (vsock CID 2, port 1024).
    public static let defaultForwardArguments = ["-url", "vsock://2:1024/connect", "-iface", "tap0"]

    /// Modules a guest's network and console need, loaded when the kernel
    /// has them as modules (built-in ones are skipped): the virtio buses
    /// (with no udev to load them for the devices found), tap devices, the
    /// virtio console (hvc0, and the serial transport's port), vsock over
    /// virtio, and the power button (ACPI button and its input events) so
    /// that the host can ask for a clean shutdown.
    public static let defaultModules = ["virtio_pci", "virtio_mmio", "tun", "virtio_console", "vmw_vsock_virtio_transport",
                                        "button", "evdev"]
}
