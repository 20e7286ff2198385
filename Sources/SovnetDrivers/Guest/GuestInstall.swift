// `sovnet guest install`: puts sovnet's guest program into a guest's root
// file system and makes it start first.
//
// The program is `sovnet-guest-embedded` (forward and init alone, Embedded
// Swift, static) or else `sovnet-guest` when it was built beside the running
// sovnet, else sovnet itself, or the one given; it goes
// to /usr/bin/sovnet, stripped (the build it came from keeps the symbols). A
// dynamically linked one brings what it links: the loader at the path it
// names (PT_INTERP), and each shared library it needs (DT_NEEDED, and
// theirs), under its SONAME, in the directory the loader will look in: the
// RUNPATH entry it was found through, as written (a symlinked toolchain
// directory stays a name the guest's loader can follow), else the system
// directory it came from; unless the root file system has it already.
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
        /// The binary to install: the guest's program beside the running one
        /// (`Executable.guestProgram`), else the running program.
        public var binary = Executable.guestProgram()
        /// Install it without symbols and debug information; the binary it
        /// was copied from keeps them (the same build ID), to read a crash with.
        public var strip = true

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
        if options.strip, let stripped = try strippedCopy(of: options.binary, report: &report) {
            defer { unlink(stripped) }
            try copy(stripped, to: root + GuestLayout.binary, mode: 0o755)
        } else {
            try copy(options.binary, to: root + GuestLayout.binary, mode: 0o755)
        }
        report.written.append(GuestLayout.binary)
        let image = try ELFImage(readAll(options.binary))
        if options.copyLibraries, let interpreter = image.interpreter {
            try copyRuntime(binary: options.binary, image: image, interpreter: interpreter, root: root, report: &report)
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

    /// The loader and every shared library `binary` needs.
    static func copyRuntime(binary: String, image: ELFImage, interpreter: String, root: String, report: inout Report) throws {
        let loader = realPath(interpreter)
        if try install(loader, at: root + interpreter) {
            report.libraries.append(interpreter)
        } else {
            report.kept.append(interpreter)
        }
        for library in try neededLibraries(of: binary, image: image) {
            if try install(library.source, at: root + library.target) {
                report.libraries.append(library.target)
            } else {
                report.kept.append(library.target)
            }
        }
    }

    /// A shared library a program needs: where it is on this machine, and
    /// the path the guest's loader will look for it at.
    struct NeededLibrary: Equatable {
        let source: String
        let target: String
    }

    /// The libraries `program` needs (DT_NEEDED), directly or through one
    /// another, found as the loader finds them: breadth first, each in the
    /// RUNPATH of the object that needs it or in the loader's directory and
    /// the system's, or already found for another object (the loader takes
    /// a library it has loaded by its name). Each must be for the program's
    /// processor.
    static func neededLibraries(of program: String, image: ELFImage) throws -> [NeededLibrary] {
        let systemDirectories = (image.interpreter.map { [(realPath($0) as NSString).deletingLastPathComponent] } ?? [])
            + multiarchDirectories(machine: image.machine)
        var found: [String: NeededLibrary] = [:]
        var order: [String] = []
        var missing: [(name: String, neededBy: String)] = []
        let loaderName = image.interpreter.map { ($0 as NSString).lastPathComponent }
        var queue = [(path: program, image: image,
                      origins: (host: (realPath(program) as NSString).deletingLastPathComponent,
                                guest: (GuestLayout.binary as NSString).deletingLastPathComponent))]
        var next = 0
        while next < queue.count {
            let object = queue[next]
            next += 1
            for name in object.image.needed where name != loaderName && found[name] == nil {
                let directories = searchDirectories(object.image.searchPath, origins: object.origins)
                    + systemDirectories.map { (host: $0, guest: realPath($0)) }
                let match = directories.lazy.compactMap { directory -> ((host: String, guest: String), ELFImage)? in
                    guard let library = try? ELFImage(readAll(directory.host + "/" + name)), library.machine == image.machine else {
                        return nil
                    }
                    return (directory, library)
                }.first
                guard let (directory, library) = match else {
                    missing.append((name, object.path))
                    continue
                }
                let source = realPath(directory.host + "/" + name)
                found[name] = NeededLibrary(source: source, target: directory.guest + "/" + (library.soname ?? name))
                order.append(name)
                queue.append((source, library, (host: (source as NSString).deletingLastPathComponent, guest: directory.guest)))
            }
        }
        if let absent = missing.first(where: { found[$0.name] == nil }) {
            throw Problem(description: "\(absent.name), which \(absent.neededBy) needs, is not on this machine for the guest's "
                          + "processor; build the guest program statically (docs/guest.md) or give --no-libraries")
        }
        return order.compactMap { found[$0] }
    }

    /// A RUNPATH's directories on this machine and in the guest: `$ORIGIN`
    /// read as the host's and the guest's copy of the object's directory;
    /// an entry is kept as written in the guest (a symlinked toolchain
    /// directory stays a name the guest's loader can follow).
    static func searchDirectories(_ searchPath: [String], origins: (host: String, guest: String)) -> [(host: String, guest: String)] {
        searchPath.compactMap { entry in
            func expanded(_ origin: String) -> String {
                entry.replacingOccurrences(of: "${ORIGIN}", with: origin).replacingOccurrences(of: "$ORIGIN", with: origin)
            }
            let host = expanded(origins.host)
            return host.hasPrefix("/") ? (host, (expanded(origins.guest) as NSString).standardizingPath) : nil
        }
    }

    /// The system's library directories for a processor, as Debian and
    /// others lay them out.
    static func multiarchDirectories(machine: Int) -> [String] {
        let triple = machine == 183 ? "aarch64-linux-gnu" : "x86_64-linux-gnu"
        return ["/lib/\(triple)", "/usr/lib/\(triple)", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    }

    /// A copy of `binary` without symbols or debug information, made by
    /// llvm-objcopy (Swift's toolchain has it; it reads any processor's ELF)
    /// or binutils' objcopy, in a temporary file; nil, with a note, when
    /// neither can.
    static func strippedCopy(of binary: String, report: inout Report) throws -> String? {
        guard let tool = Executable.find("llvm-objcopy") ?? Executable.find("objcopy") else {
            report.notes.append("installed with its symbols: neither llvm-objcopy nor objcopy was found to strip it")
            return nil
        }
        let output = NSTemporaryDirectory() + "sovnet-guest-stripped-\(getpid())"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["--strip-all", binary, output]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            unlink(output)
            report.notes.append("installed with its symbols: \(tool) --strip-all \(binary) failed")
            return nil
        }
        report.notes.append("installed stripped; \(binary) keeps the symbols and debug information (same build ID)")
        return output
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
