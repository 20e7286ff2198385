// `sovnet guest install`: puts the running sovnet binary into a guest's root
// file system and makes it start first.
//
// The binary goes to /usr/bin/sovnet. A dynamically linked one brings what
// it links: the loader at the path it names (PT_INTERP), and each shared
// library mapped into this process, under its SONAME, in the directory the
// loader will look in: the binary's RUNPATH entry that leads to the
// library's directory, as written (a symlinked toolchain directory stays a
// name the guest's loader can follow), else the directory the library came
// from (a system directory the loader searches); unless the root file
// system has it already.
//
// Then the init: `sovnet` links /sbin/sovnet-init to the binary and writes
// /etc/sovnet/{forward,services,modules} where they are missing; `openrc`
// and `systemd` write a service for `sovnet forward` and enable it, for
// images that keep their init.
import Foundation
import Glibc
import SovnetGuest
import SovnetGuestCore

/// Installs sovnet into a root file system.
public enum GuestInstall {
    /// Which init starts `sovnet forward`.
    public enum InitKind: String, CaseIterable, Sendable {
        case sovnet, openrc, systemd
    }

    public struct Options: Sendable {
        public var root: String
        public var initKind: InitKind = .sovnet
        /// The arguments of `sovnet forward`; nil keeps an existing /etc/sovnet/forward (or writes the defaults).
        public var forwardArguments: [String]?
        /// Copy the loader and shared libraries of a dynamically linked binary.
        public var copyLibraries = true
        /// The binary to install (the running one).
        public var binary = Executable.current

        public init(root: String) {
            self.root = root
        }
    }

    /// What was written.
    public struct Report: Sendable {
        public var written: [String] = []
        public var libraries: [String] = []
        /// Libraries the root file system has already (its own are kept).
        public var kept: [String] = []
        /// The kernel parameters that boot into the installed init.
        public var kernelParameters = ""
        public var notes: [String] = []
    }

    /// A problem that stops the installation.
    public struct Problem: Error, CustomStringConvertible {
        public let description: String
    }

    public static func run(_ options: Options) throws -> Report {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: options.root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw Problem(description: "\(options.root) is not a directory")
        }
        var report = Report()
        let root = options.root.hasSuffix("/") ? String(options.root.dropLast()) : options.root
        try copy(options.binary, to: root + GuestLayout.binary, mode: 0o755)
        report.written.append(GuestLayout.binary)
        let image = try ELFImage(readAll(options.binary))
        if options.copyLibraries, let interpreter = image.interpreter {
            let origins = (host: (realPath(options.binary) as NSString).deletingLastPathComponent,
                           guest: (GuestLayout.binary as NSString).deletingLastPathComponent)
            try copyRuntime(interpreter: interpreter, searchPath: image.searchPath, origins: origins, root: root, report: &report)
        }
        let forwardLine = options.forwardArguments.map(commandLine)
        switch options.initKind {
        case .sovnet:
            try link(root + GuestLayout.initLink, to: GuestLayout.binary)
            report.written.append(GuestLayout.initLink + " -> " + GuestLayout.binary)
            if let forwardLine {
                try write(root + GuestLayout.forwardArguments, forwardLine + "\n")
                report.written.append(GuestLayout.forwardArguments)
            } else if try writeIfMissing(root + GuestLayout.forwardArguments, commandLine(GuestLayout.defaultForwardArguments) + "\n") {
                report.written.append(GuestLayout.forwardArguments)
            }
            if try writeIfMissing(root + GuestLayout.services, ServiceFiles.servicesTemplate) {
                report.written.append(GuestLayout.services)
            }
            if try writeIfMissing(root + GuestLayout.modules, ServiceFiles.modulesTemplate) {
                report.written.append(GuestLayout.modules)
            }
            report.kernelParameters = "console=hvc0 init=\(GuestLayout.initLink)"
            report.notes.append("an initramfs boots it with rdinit=\(GuestLayout.initLink) instead of init=")
        case .openrc:
            let arguments = forwardLine ?? commandLine(GuestLayout.defaultForwardArguments)
            let script = "/etc/init.d/sovnet-forward"
            try write(root + script, ServiceFiles.openrc(forwardArguments: arguments), mode: 0o755)
            try link(root + "/etc/runlevels/default/sovnet-forward", to: script)
            report.written += [script, "/etc/runlevels/default/sovnet-forward -> \(script)"]
            report.kernelParameters = "console=hvc0"
        case .systemd:
            let arguments = forwardLine ?? commandLine(GuestLayout.defaultForwardArguments)
            let unit = "/etc/systemd/system/sovnet-forward.service"
            try write(root + unit, ServiceFiles.systemd(forwardArguments: arguments))
            try link(root + "/etc/systemd/system/multi-user.target.wants/sovnet-forward.service", to: unit)
            report.written += [unit, "/etc/systemd/system/multi-user.target.wants/sovnet-forward.service -> \(unit)"]
            report.kernelParameters = "console=hvc0"
        }
        return report
    }

    /// The loader and every shared library this process has mapped.
    static func copyRuntime(interpreter: String, searchPath: [String], origins: (host: String, guest: String),
                            root: String, report: inout Report) throws {
        let loader = realPath(interpreter)
        if try install(loader, at: root + interpreter) {
            report.libraries.append(interpreter)
        } else {
            report.kept.append(interpreter)
        }
        for library in mappedLibraries() where library != loader {
            let soname = (try? ELFImage(readAll(library)))?.soname ?? (library as NSString).lastPathComponent
            let target = libraryDirectory(library, searchPath: searchPath, origins: origins) + "/" + soname
            if try install(library, at: root + target) {
                report.libraries.append(target)
            } else {
                report.kept.append(target)
            }
        }
    }

    /// Where the guest's loader will look for `library` (a real path): the
    /// first RUNPATH entry whose directory, `$ORIGIN` read as the host
    /// binary's, is the library's; that entry with `$ORIGIN` read as the
    /// guest binary's. Else the library's own directory.
    static func libraryDirectory(_ library: String, searchPath: [String], origins: (host: String, guest: String)) -> String {
        let directory = (library as NSString).deletingLastPathComponent
        for entry in searchPath {
            func expanded(_ origin: String) -> String {
                entry.replacingOccurrences(of: "${ORIGIN}", with: origin).replacingOccurrences(of: "$ORIGIN", with: origin)
            }
            let host = expanded(origins.host)
            if host.hasPrefix("/"), realPath(host) == directory { return expanded(origins.guest) }
        }
        return directory
    }

    /// The shared objects mapped into this process (`/proc/self/maps`), by real path.
    static func mappedLibraries() -> [String] {
        // Read to the end with stdio: /proc files have no size, and Foundation stops short.
        guard let maps = GuestInit.readFile("/proc/self/maps") else { return [] }
        var seen: [String] = []
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6 else { continue }
            let path = fields[5].trimmingCharacters(in: .whitespaces)
            guard path.hasPrefix("/"), path.contains(".so"), !seen.contains(path) else { continue }
            seen.append(path)
        }
        return seen
    }

    /// Copies `source` to `target` unless something is there already; true when copied.
    static func install(_ source: String, at target: String) throws -> Bool {
        if FileManager.default.fileExists(atPath: target) { return false }
        var status = stat()
        let mode = stat(source, &status) == 0 ? status.st_mode & 0o777 : 0o755
        try copy(source, to: target, mode: mode)
        return true
    }

    static func copy(_ source: String, to target: String, mode: mode_t) throws {
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        let temporary = target + ".sovnet-\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        let bytes = try readAll(source)
        guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
            throw Problem(description: "cannot write \(target)")
        }
        guard chmod(temporary, mode) == 0, rename(temporary, target) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw Problem(description: "cannot install \(target): \(reason)")
        }
    }

    static func link(_ path: String, to target: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        unlink(path)
        guard symlink(target, path) == 0 else {
            throw Problem(description: "cannot link \(path): \(String(cString: strerror(errno)))")
        }
    }

    static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try AtomicFile(path: path).write(text)
        chmod(path, mode)
    }

    static func writeIfMissing(_ path: String, _ text: String) throws -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        try write(path, text)
        return true
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem(description: "cannot read \(path)")
        }
        return [UInt8](data)
    }

    static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Words joined into one line that `ServiceList.split` splits back.
    public static func commandLine(_ words: [String]) -> String {
        words.map { word in
            let plain = !word.isEmpty && word.allSatisfy { $0.isLetter || $0.isNumber || "-_./:=,@+%".contains($0) }
            return plain ? word : "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: #"'\''"#) + "'"
        }.joined(separator: " ")
    }
}
