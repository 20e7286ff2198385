// Which kernel configuration `sovnet up` checks for a guest, and which
// missing options stop the launch: those without which the guest cannot
// reach the network or show its console (essential); the others (SYSVIPC,
// Tailscale's) are warnings, since not every guest runs PostgreSQL or
// Tailscale. A netns guest runs on this host's kernel: /proc/config.gz.
import Foundation

/// The kernel check of a launch.
public struct KernelCheck {
    public var source: String
    public var missingEssential: [KernelRequirement] = []
    public var missingOther: [KernelRequirement] = []
    /// Options the guest has only as modules that its initramfs must load
    /// early (the console's: kernel messages before that are lost).
    public var earlyModules: [String] = []
    /// Why the configuration could not be checked (a warning), if it could not.
    public var unchecked: String?

    /// Options whose absence stops a launch of `kind`.
    public static func essential(_ configuration: LaunchConfiguration) -> Set<String> {
        let serial: Set<String> = configuration.transport == .serial ? ["VIRTIO_CONSOLE", "TUN"] : []
        switch configuration.guest.kind {
        case .netns: return ["TUN"]
        case .qemu:
            let console: Set<String> = configuration.guest.console == "ttyS0" ? ["VIRTIO_PCI"] : ["VIRTIO_PCI", "VIRTIO_CONSOLE"]
            return console.union(serial)
        case .crosvm:
            let vsock: Set<String> = configuration.transport == .serial ? [] : ["VSOCKETS", "VIRTIO_VSOCKETS"]
            return vsock.union(["VIRTIO_CONSOLE", "VIRTIO_PCI", "VIRTIO_BLK", "TUN"])
        }
    }

    /// Reads the guest kernel's configuration and checks it.
    public static func run(_ configuration: LaunchConfiguration) throws -> KernelCheck {
        let config: KernelConfig
        let source: KernelConfig.Source
        do {
            if let path = configuration.guest.kernelConfig {
                config = try KernelConfig.load(file: path)
                source = .file(path)
            } else if configuration.guest.kind == .netns {
                guard FileManager.default.fileExists(atPath: "/proc/config.gz") else {
                    return KernelCheck(source: "this host's kernel",
                                       unchecked: "this kernel has no /proc/config.gz: its configuration was not checked")
                }
                config = try KernelConfig.load(file: "/proc/config.gz")
                source = .running
            } else {
                let image = configuration.guest.kernel ?? ""
                config = try KernelConfig.load(image: image)
                source = .image(image)
            }
        } catch {
            if configuration.guest.kernelConfig != nil { throw LaunchError("\(error)") }
            return KernelCheck(source: "the guest kernel", unchecked: "kernel configuration not checked: \(error)")
        }
        let report = KernelReport(config: config, source: source, vsock: configuration.transport == .vsock,
                                  initramfs: configuration.guest.initrd != nil)
        let essential = essential(configuration)
        var check = KernelCheck(source: "\(source)")
        for (requirement, verdict) in report.lines where !requirement.moduleAllowed {
            if case .module(let option) = verdict { check.earlyModules.append("CONFIG_\(option)") }
        }
        for requirement in report.missing {
            if requirement.anyOf.contains(where: essential.contains) {
                check.missingEssential.append(requirement)
            } else {
                check.missingOther.append(requirement)
            }
        }
        return check
    }
}
