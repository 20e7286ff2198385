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
