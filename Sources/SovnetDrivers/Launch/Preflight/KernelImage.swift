// The configuration built into a kernel image (CONFIG_IKCONFIG), as
// scripts/extract-ikconfig in the kernel tree finds it: the gzip data
// between the markers IKCFG_ST and IKCFG_ED. The image itself may be
// compressed whole (arm64 `Image.gz`) or hold a compressed payload behind a
// boot stub (x86 `bzImage`): every gzip or xz stream that starts in the
// file is tried in turn until one holds the markers.

import CSovnetShim
import SovnetGuest

/// Reads the configuration inside a kernel image.
public enum KernelImage {
    /// Why a configuration could not be found.
    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    static let start = Array("IKCFG_ST".utf8)
    static let end = Array("IKCFG_ED".utf8)
    static let gzipMagic: [UInt8] = [0x1F, 0x8B, 0x08]
    static let xzMagic: [UInt8] = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]
    /// Compressed streams tried per image, at most.
    static let maximumCandidates = 16

    /// The `.config` text embedded in `image`.
    public static func configuration(in image: [UInt8]) throws(Problem) -> String {
        if let text = embedded(in: image[...]) { return text }
        var candidates = 0
        var searched = 0
        for offset in offsets(of: gzipMagic, in: image[...]) + offsets(of: xzMagic, in: image[...]) {
            guard candidates < maximumCandidates else { break }
            candidates += 1
            let rest = image[offset...]
            guard let payload = image[offset] == 0x1F ? Decompression.gunzip(rest) : Decompression.unxz(rest) else { continue }
            searched += 1
            if let text = embedded(in: payload[...]) { return text }
        }
        if searched == 0 {
            throw Problem(description: "no configuration found: the image is not a kernel with a gzip or xz payload "
                          + "(zstd, lz4 and others are not read; pass the kernel's .config instead)")
        }
        throw Problem(description: "the kernel was built without CONFIG_IKCONFIG: it carries no configuration; "
                      + "pass its .config (e.g. /boot/config-VERSION) instead")
    }

    /// The configuration between the markers in `bytes`, if they are there.
    static func embedded(in bytes: ArraySlice<UInt8>) -> String? {
        for offset in offsets(of: start, in: bytes) {
            let data = bytes[(offset + start.count)...]
            guard let text = Decompression.gunzip(data, limit: 4 << 20) else { continue }
            return String(decoding: text, as: UTF8.self)
        }
        return nil
    }

    /// Where `pattern` starts in `bytes` (indices of `bytes`), in order.
    static func offsets(of pattern: [UInt8], in bytes: ArraySlice<UInt8>) -> [Int] {
        bytes.withUnsafeBytes { haystack in
            pattern.withUnsafeBytes { needle in
                var found: [Int] = []
                var from = 0
                while from + needle.count <= haystack.count,
                      let hit = sovnet_memmem(haystack.baseAddress! + from, haystack.count - from, needle.baseAddress, needle.count) {
                    let offset = haystack.baseAddress!.distance(to: UnsafeRawPointer(hit))
                    found.append(bytes.startIndex + offset)
                    from = offset + 1
                }
                return found
            }
        }
    }
}
