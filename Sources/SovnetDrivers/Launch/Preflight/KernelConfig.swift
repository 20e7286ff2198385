// Checks a guest kernel's configuration for what the deployment needs: the
// options that made the field deployment need fixes by hand (hvc0,
// SYSVIPC for PostgreSQL) and those sovnet and Tailscale rely on. The text
// is a `.config` (`CONFIG_X=y`, `=m`, `# CONFIG_X is not set`), read from a
// file, /proc/config.gz, or the image itself (`KernelImage`).
import Glibc
import SovnetGuest

/// A kernel configuration, option by option.
public struct KernelConfig: Sendable, Equatable {
    /// Option name without `CONFIG_` → value (`y`, `m`, a number or a string).
    public var options: [String: String]

    public init(text: String) {
        var options: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("CONFIG_") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            options[String(line[line.index(line.startIndex, offsetBy: 7)..<equals])] = String(line[line.index(after: equals)...])
        }
        self.options = options
    }

    /// How an option is built: `y` (in the kernel), `m` (a module) or nil (not set).
    public func value(_ option: String) -> String? { options[option] }

    /// Where a configuration came from, for messages.
    public enum Source: Sendable, Equatable, CustomStringConvertible {
        case file(String), image(String), running
        public var description: String {
            switch self {
            case .file(let path): "\(path)"
            case .image(let path): "the configuration inside \(path)"
            case .running: "/proc/config.gz (the running kernel)"
            }
        }
    }

    /// Reads a `.config` file, gzip-compressed or not.
    public static func load(file path: String) throws(KernelImage.Problem) -> KernelConfig {
        let bytes = try read(path)
        if bytes.starts(with: KernelImage.gzipMagic) {
            guard let text = Decompression.gunzip(bytes[...], limit: 16 << 20) else {
                throw KernelImage.Problem(description: "\(path): not valid gzip")
            }
            return KernelConfig(text: String(decoding: text, as: UTF8.self))
        }
        let config = KernelConfig(text: String(decoding: bytes, as: UTF8.self))
        guard !config.options.isEmpty else { throw KernelImage.Problem(description: "\(path): no CONFIG_ lines: not a kernel .config") }
        return config
    }

    /// Reads the configuration inside a kernel image.
    public static func load(image path: String) throws(KernelImage.Problem) -> KernelConfig {
        KernelConfig(text: try KernelImage.configuration(in: try read(path)))
    }

    static func read(_ path: String) throws(KernelImage.Problem) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw KernelImage.Problem(description: "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw KernelImage.Problem(description: "\(path): \(String(cString: strerror(errno)))") }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
            guard bytes.count <= 512 << 20 else { throw KernelImage.Problem(description: "\(path): larger than 512 MiB") }
        }
    }
}

/// One thing the guest kernel must have, with who needs it.
public struct KernelRequirement: Sendable, Equatable {
    /// Options of which at least one must be set (`y`, or `m` when a module will do).
    public var anyOf: [String]
    public var neededBy: String
    /// Whether a module (`=m`) is enough: it is not for the boot console.
    public var moduleAllowed: Bool

    /// What `sovnet up` checks, for a guest kind (vsock only where it is used).
    public static func all(vsock: Bool) -> [KernelRequirement] {
        var requirements = [
            KernelRequirement(anyOf: ["VIRTIO_CONSOLE"], neededBy: "the hvc0 console", moduleAllowed: false),
            KernelRequirement(anyOf: ["VIRTIO_PCI"], neededBy: "virtio devices on PCI", moduleAllowed: true),
            KernelRequirement(anyOf: ["VIRTIO_BLK"], neededBy: "the root disk", moduleAllowed: true),
            KernelRequirement(anyOf: ["TUN"], neededBy: "sovnet forward's tap0 and Tailscale", moduleAllowed: true),
            KernelRequirement(anyOf: ["SYSVIPC"], neededBy: "PostgreSQL (System V shared memory)", moduleAllowed: false),
            KernelRequirement(anyOf: ["IP_MULTIPLE_TABLES"], neededBy: "Tailscale (policy routing)", moduleAllowed: false),
            KernelRequirement(anyOf: ["NF_TABLES", "IP_NF_IPTABLES"], neededBy: "Tailscale (netfilter or nftables)",
                              moduleAllowed: true),
        ]
        if vsock {
            requirements.insert(KernelRequirement(anyOf: ["VSOCKETS"], neededBy: "sovnet forward over vsock",
                                                  moduleAllowed: true), at: 4)
            requirements.insert(KernelRequirement(anyOf: ["VIRTIO_VSOCKETS"], neededBy: "sovnet forward over vsock",
                                                  moduleAllowed: true), at: 5)
        }
        return requirements
    }

    /// How the requirement stands in `config`. With an `initramfs` to load
    /// modules early, a module does for every requirement.
    public func verdict(in config: KernelConfig, initramfs: Bool = false) -> KernelVerdict {
        let values = anyOf.compactMap { option in config.value(option).map { (option, $0) } }
        if let built = values.first(where: { $0.1 == "y" }) { return .present(built.0) }
        if let module = values.first(where: { $0.1 == "m" }) {
            return moduleAllowed || initramfs ? .module(module.0) : .missing
        }
        return .missing
    }
}

/// A requirement's state.
public enum KernelVerdict: Sendable, Equatable {
    /// Built in, by this option.
    case present(String)
    /// A module: present if the guest loads it.
    case module(String)
    case missing
}

/// The result of checking a configuration: a line per requirement.
public struct KernelReport: Sendable {
    public var source: KernelConfig.Source
    public var lines: [(requirement: KernelRequirement, verdict: KernelVerdict)]

    public init(config: KernelConfig, source: KernelConfig.Source, vsock: Bool, initramfs: Bool = false) {
        self.source = source
        lines = KernelRequirement.all(vsock: vsock).map { ($0, $0.verdict(in: config, initramfs: initramfs)) }
    }

    /// The requirements not met.
    public var missing: [KernelRequirement] { lines.filter { $0.verdict == .missing }.map(\.requirement) }

    /// One line per requirement, like `CONFIG_SYSVIPC  MISSING  needed by PostgreSQL …`.
    public var text: String {
        let names = lines.map { $0.requirement.anyOf.map { "CONFIG_\($0)" }.joined(separator: " or ") }
        let width = names.map(\.count).max() ?? 0
        var out = "kernel configuration from \(source):\n"
        for ((requirement, verdict), name) in zip(lines, names) {
            let state: String
            switch verdict {
            case .present: state = "ok     "
            case .module: state = "module "
            case .missing: state = "MISSING"
            }
            var line = "  " + name + String(repeating: " ", count: width - name.count) + "  \(state)  needed by \(requirement.neededBy)"
            if case .module(let option) = verdict { line += " (CONFIG_\(option)=m: the guest must load the module)" }
            out += line + "\n"
        }
        return out
    }
}
