// Big-endian field access on raw bytes (and little-endian, for the virtio-net header).
//
// Readers are only called after a view has checked that the bytes are long
// enough; `loadUnaligned` still checks bounds in debug builds. Writers append
// to a growing `[UInt8]`, so emitting never writes out of bounds.

extension UnsafeRawBufferPointer {
    @inlinable
    func u8(_ offset: Int) -> UInt8 {
        self[offset]
    }

    @inlinable
    func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable
    func le16(_ offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable
    func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// The bytes from `start` up to `end` (clamped to the buffer).
    @inlinable
    func slice(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        let lower = Swift.min(Swift.max(start, 0), count)
        let upper = Swift.min(Swift.max(end, lower), count)
        return UnsafeRawBufferPointer(rebasing: self[lower..<upper])
    }

    /// The bytes from `start` to the end of the buffer.
    @inlinable
    func suffix(from start: Int) -> UnsafeRawBufferPointer {
        slice(start, count)
    }
}

extension Array where Element == UInt8 {
    @inlinable
    mutating func appendBE16(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable
    mutating func appendBE32(_ value: UInt32) {
        append(UInt8(truncatingIfNeeded: value >> 24))
        append(UInt8(truncatingIfNeeded: value >> 16))
        append(UInt8(truncatingIfNeeded: value >> 8))
        append(UInt8(truncatingIfNeeded: value))
    }

    @inlinable
    mutating func storeBE16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    @inlinable
    mutating func appendZeros(_ count: Int) {
        if count > 0 { append(contentsOf: repeatElement(0, count: count)) }
    }
}

/// Runs `body` over the bytes of `bytes`; the convenience entry point of
/// every `parse` that takes an array instead of raw bytes.
@inlinable
func withBytes<C: Collection, R, E: Error>(
    _ bytes: C, _ body: (UnsafeRawBufferPointer) throws(E) -> R
) throws(E) -> R where C.Element == UInt8 {
    func run(_ raw: UnsafeRawBufferPointer) -> Result<R, E> {
        do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
    }
    if let result = bytes.withContiguousStorageIfAvailable({ run(UnsafeRawBufferPointer($0)) }) {
        return try result.get()
    }
    return try Array(bytes).withUnsafeBytes { run($0) }.get()
}
