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

    @Test func librariesNameThemselves() throws {
        let libc = try #require(GuestInstall.mappedLibraries().first { $0.contains("/libc.so") })
        #expect(try ELFImage(try Self.bytes(libc)).soname == "libc.so.6")
        let swiftCore = try #require(GuestInstall.mappedLibraries().first { $0.hasSuffix("/libswiftCore.so") })
        let image = try ELFImage(try Self.bytes(swiftCore))
        #expect(image.soname == "libswiftCore.so" && image.interpreter == nil)
    }

    @Test func aProgramNamesWhereItsLibrariesAre() throws {
        let image = try ELFImage(try Self.bytes("/proc/self/exe"))
        let swiftCore = try #require(GuestInstall.mappedLibraries().first { $0.hasSuffix("/libswiftCore.so") })
        let directory = (swiftCore as NSString).deletingLastPathComponent
        #expect(image.searchPath.contains { GuestInstall.realPath($0) == directory }, "\(image.searchPath)")
        #expect(try ELFImage(try Self.bytes("/bin/sh")).searchPath.isEmpty)
    }

    /// A library found through a RUNPATH entry that is a symlink goes where
    /// the entry says, so the guest's loader finds it by the same name.
    @Test func librariesGoWhereTheRunpathLooks() throws {
        let work = NSTemporaryDirectory() + "sovnet-runpath-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.createDirectory(atPath: work + "/toolchain-6.3/lib", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: work + "/toolchain", withDestinationPath: work + "/toolchain-6.3")
        let library = GuestInstall.realPath(work + "/toolchain-6.3/lib") + "/libswiftCore.so"
        let origins = (host: "/build/debug", guest: "/usr/bin")
        #expect(GuestInstall.libraryDirectory(library, searchPath: [work + "/toolchain/lib", "$ORIGIN"], origins: origins)
                == work + "/toolchain/lib")
        #expect(GuestInstall.libraryDirectory(library, searchPath: ["/nowhere"], origins: origins)
                == GuestInstall.realPath(work + "/toolchain-6.3/lib"))
        let beside = GuestInstall.realPath(work) + "/libbeside.so"
        #expect(GuestInstall.libraryDirectory(beside, searchPath: ["$ORIGIN/../lib", "${ORIGIN}"],
                                              origins: (host: GuestInstall.realPath(work), guest: "/usr/bin")) == "/usr/bin")
        #expect(GuestInstall.libraryDirectory("/usr/lib/x86_64-linux-gnu/libc.so.6", searchPath: [], origins: origins)
                == "/usr/lib/x86_64-linux-gnu")
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
