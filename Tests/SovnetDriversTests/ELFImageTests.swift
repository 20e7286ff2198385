import Foundation
import Testing
@testable import SovnetDrivers

/// The ELF facts `sovnet guest install` reads, from real files of this
/// machine, and from their bytes cut and changed: errors, never a trap.
@Suite struct ELFImageTests {
    static func bytes(_ path: String) throws -> [UInt8] {
        [UInt8](try #require(FileManager.default.contents(atPath: path)))
    }

    @Test func aProgramNamesItsLoaderAndItsLibraries() throws {
        let image = try ELFImage(try Self.bytes("/proc/self/exe"))
        #expect(image.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(image.needed.contains("libc.so.6"))
        #expect(image.soname == nil)
    }

    /// The libraries of this test program (a debug build: the Swift
    /// runtime comes from the toolchain through its RUNPATH), found as the
    /// loader finds them.
    static func neededByThisProgram() throws -> [GuestInstall.NeededLibrary] {
        try GuestInstall.neededLibraries(of: "/proc/self/exe", image: try ELFImage(try bytes("/proc/self/exe")))
    }

    @Test func librariesNameThemselves() throws {
        let needed = try Self.neededByThisProgram()
        let libc = try #require(needed.first { $0.target.hasSuffix("/libc.so.6") })
        #expect(try ELFImage(try Self.bytes(libc.source)).soname == "libc.so.6")
        let swiftCore = try #require(needed.first { $0.target.hasSuffix("/libswiftCore.so") })
        let image = try ELFImage(try Self.bytes(swiftCore.source))
        #expect(image.soname == "libswiftCore.so" && image.interpreter == nil && image.machine == 62)
    }

    /// Every library ldd lists is found, in the directory ldd found it in,
    /// the loader never among them (it is copied by its own path).
    @Test func theLibrariesFoundAreTheOnesTheLoaderLoads() throws {
        let needed = try Self.neededByThisProgram()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        process.arguments = ["/proc/\(getpid())/exe"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let ldd = output.split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count >= 3 && words[1] == "=>" ? GuestInstall.realPath(String(words[2])) : nil
        }
        #expect(Set(needed.map(\.source)) == Set(ldd), "\(needed) against \(ldd)")
        #expect(!needed.contains { $0.target.contains("ld-linux") })
    }

    @Test func aProgramNamesWhereItsLibrariesAre() throws {
        let image = try ELFImage(try Self.bytes("/proc/self/exe"))
        let swiftCore = try #require(try Self.neededByThisProgram().first { $0.target.hasSuffix("/libswiftCore.so") })
        let directory = (swiftCore.source as NSString).deletingLastPathComponent
        #expect(image.searchPath.contains { GuestInstall.realPath($0) == directory }, "\(image.searchPath)")
        #expect(try ELFImage(try Self.bytes("/bin/sh")).searchPath.isEmpty)
    }

    /// A RUNPATH entry that is a symlink is kept as written in the guest, so
    /// the guest's loader finds the library by the same name; `$ORIGIN` is
    /// the object's directory, on this machine and in the guest.
    @Test func runpathEntriesKeepTheirNamesInTheGuest() throws {
        let origins = (host: "/build/debug", guest: "/usr/bin")
        let directories = GuestInstall.searchDirectories(["/opt/toolchain/lib", "$ORIGIN/../lib", "${ORIGIN}", "relative/lib"],
                                                         origins: origins)
        #expect(directories.map(\.host) == ["/opt/toolchain/lib", "/build/debug/../lib", "/build/debug"])
        #expect(directories.map(\.guest) == ["/opt/toolchain/lib", "/usr/lib", "/usr/bin"])
    }

    @Test func aLibraryForAnotherProcessorIsNotTaken() throws {
        #expect(GuestInstall.multiarchDirectories(machine: 183).first == "/lib/aarch64-linux-gnu")
        var bytes = try Self.bytes("/proc/self/exe")
        bytes[0x12] = 183
        bytes[0x13] = 0
        let foreign = try ELFImage(bytes)
        #expect(foreign.machine == 183)
        #expect(throws: GuestInstall.Problem.self) { try GuestInstall.neededLibraries(of: "/proc/self/exe", image: foreign) }
    }

    @Test func badBytesAreErrors() throws {
        #expect(throws: ELFImage.Problem(description: "not an ELF file")) { try ELFImage(Array("#!/bin/sh\n".utf8)) }
        #expect(throws: ELFImage.Problem.self) { try ELFImage([0x7F, 0x45, 0x4C, 0x46, 1, 1] + [UInt8](repeating: 0, count: 58)) }
        let real = try Self.bytes("/proc/self/exe")
        var generator = SystemRandomNumberGenerator()
        for length in [64, 100, 1000, 5000, 20_000] {
            _ = try? ELFImage(Array(real.prefix(length)))
        }
        for _ in 0..<300 {
            var mutated = Array(real.prefix(16_384))
            for _ in 0..<8 { mutated[Int.random(in: 0..<mutated.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator) }
            _ = try? ELFImage(mutated)
        }
    }
}
