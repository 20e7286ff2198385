// Whole-buffer decompression: gzip (zlib) and xz (liblzma), for kernel
// images (their payload and embedded configuration are in one of these) and
// compressed kernel modules. The data may be followed by other bytes, which
// are ignored. Output is capped so a hostile file cannot exhaust memory.
import CLzma
import CZlib

public enum Decompression {
    /// The largest output accepted (a kernel image is far smaller).
    public static let limit = 256 << 20

    /// Inflates a gzip stream starting at `bytes`; nil when it is not valid gzip.
    public static func gunzip(_ bytes: ArraySlice<UInt8>, limit: Int = limit) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        return bytes.withUnsafeBufferPointer { input -> [UInt8]? in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = UInt32(clamping: input.count)
            while true {
                let status = chunk.withUnsafeMutableBufferPointer { buffer -> Int32 in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                output += chunk[..<(chunk.count - Int(stream.avail_out))]
                if status == Z_STREAM_END { return output }
                guard status == Z_OK, output.count <= limit, stream.avail_in > 0 || stream.avail_out == 0 else { return nil }
            }
        }
    }

    /// Decodes an xz stream starting at `bytes`; nil when it is not valid xz.
    public static func unxz(_ bytes: ArraySlice<UInt8>, limit: Int = limit) -> [UInt8]? {
        var stream = lzma_stream()
        guard lzma_stream_decoder(&stream, UInt64.max, 0) == LZMA_OK else { return nil }
        defer { lzma_end(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        return bytes.withUnsafeBufferPointer { input -> [UInt8]? in
            stream.next_in = input.baseAddress
            stream.avail_in = input.count
            while true {
                let status = chunk.withUnsafeMutableBufferPointer { buffer -> lzma_ret in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = buffer.count
                    return lzma_code(&stream, stream.avail_in > 0 ? LZMA_RUN : LZMA_FINISH)
                }
                output += chunk[..<(chunk.count - stream.avail_out)]
                if status == LZMA_STREAM_END { return output }
                guard status == LZMA_OK, output.count <= limit else { return nil }
                if stream.avail_in == 0, stream.avail_out > 0 { return nil }
            }
        }
    }
}
