// Loading kernel modules the way modprobe does, for an init that has no
// modprobe to run: each module's dependencies first (from modules.dep),
// built-in modules skipped (modules.builtin), modules already loaded left
// alone. A compressed module (.ko.xz, .ko.gz, .ko.zst) is handed to the
// kernel to decompress (finit_module's MODULE_INIT_COMPRESSED_FILE, Linux
// 5.17 and later); a kernel that cannot gets xz and gzip modules
// decompressed here and loaded with init_module.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SovnetLink

/// The modules of the running kernel under `/lib/modules/RELEASE`.
public struct KernelModules {
    /// What loading one module came to.
    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case loaded
        case alreadyLoaded
        case builtIn
        case notFound
        case failed(String)

        public var description: String {
            switch self {
            case .loaded: "loaded"
            case .alreadyLoaded: "already loaded"
            case .builtIn: "built in"
            case .notFound: "not found"
            case .failed(let reason): "failed: \(reason)"
            }
        }
    }

    public let directory: String
    private var paths: [String: String] = [:]
    private var dependencies: [String: [String]] = [:]
    private var builtIn: Set<String> = []
    private var done: [String: Outcome] = [:]

    /// Reads `ROOT/lib/modules/RELEASE/modules.dep` and `modules.builtin`;
    /// nil when the kernel has no module directory (everything built in).
    public init?(root: String = "", release: String = KernelModules.release) {
        directory = root + "/lib/modules/" + release
        guard let dependencyList = Self.read(directory + "/modules.dep") else { return nil }
        for line in dependencyList.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let path = String(line[..<colon])
            let name = Self.name(ofPath: path)
            paths[name] = path
            dependencies[name] = line[line.index(after: colon)...].split(separator: " ").map { Self.name(ofPath: String($0)) }
        }
        for line in (Self.read(directory + "/modules.builtin") ?? "").split(separator: "\n") {
            builtIn.insert(Self.name(ofPath: String(line)))
        }
    }

    /// The running kernel's release (`uname -r`).
    public static var release: String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// A module's name from its path: `kernel/drivers/net/tun.ko.xz` → `tun`;
    /// `-` and `_` are the same in module names, so `_` is used.
    public static func name(ofPath path: String) -> String {
        var base = Substring(path.split(separator: "/").last ?? Substring(path))
        for suffix in [".xz", ".gz", ".zst"] where base.hasSuffix(suffix) { base = base.dropLast(suffix.count) }
        if base.hasSuffix(".ko") { base = base.dropLast(3) }
        return String(base.map { $0 == "-" ? "_" : $0 })
    }

    /// Loads `name` and what it depends on; `parameters` go to `name` only.
    public mutating func load(_ name: String, parameters: String = "") -> Outcome {
        load(Self.name(ofPath: name), parameters: parameters, depth: 0)
    }

    private mutating func load(_ name: String, parameters: String, depth: Int) -> Outcome {
        if let outcome = done[name] { return outcome }
        if builtIn.contains(name) { return remember(name, .builtIn) }
        guard let path = paths[name] else { return remember(name, .notFound) }
        guard depth < 32 else { return remember(name, .failed("dependencies nested too deeply")) }
        if Self.isLoaded(name) { return remember(name, .alreadyLoaded) }
        for dependency in dependencies[name] ?? [] {
            switch load(dependency, parameters: "", depth: depth + 1) {
            case .loaded, .alreadyLoaded, .builtIn: continue
            case let outcome: return remember(name, .failed("needs \(dependency), which \(outcome)"))
            }
        }
        return remember(name, insert(directory + "/" + path, parameters: parameters))
    }

    private mutating func remember(_ name: String, _ outcome: Outcome) -> Outcome {
        done[name] = outcome
        return outcome
    }

    private static func isLoaded(_ name: String) -> Bool {
        access("/sys/module/\(name)/initstate", F_OK) == 0
    }

    /// Hands one module file to the kernel.
    private func insert(_ file: String, parameters: String) -> Outcome {
        let fd = systemOpen(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return .failed("open \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let compressed = [".xz", ".gz", ".zst"].contains { file.hasSuffix($0) }
        if sovnet_finit_module(fd, parameters, compressed ? sovnet_module_init_compressed_file() : 0) == 0 { return .loaded }
        let error = errno
        if error == EEXIST { return .alreadyLoaded }
        guard compressed, [EINVAL, EOPNOTSUPP, ENOEXEC].contains(error) else {
            return .failed(String(cString: strerror(error)))
        }
        guard let packed = Self.readBytes(fd) else { return .failed("cannot read \(file)") }
        let image: [UInt8]? = file.hasSuffix(".xz") ? Decompression.unxz(packed[...], limit: 64 << 20)
            : file.hasSuffix(".gz") ? Decompression.gunzip(packed[...], limit: 64 << 20) : nil
        guard let image else { return .failed("the kernel cannot decompress \(file), and sovnet cannot either") }
        let result = image.withUnsafeBytes { sovnet_init_module($0.baseAddress, UInt($0.count), parameters) }
        if result == 0 { return .loaded }
        return errno == EEXIST ? .alreadyLoaded : .failed(String(cString: strerror(errno)))
    }

    private static func read(_ path: String) -> String? {
        let fd = systemOpen(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readBytes(fd).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func readBytes(_ fd: Int32) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { return bytes }
            bytes += chunk[..<count]
        }
    }
}
