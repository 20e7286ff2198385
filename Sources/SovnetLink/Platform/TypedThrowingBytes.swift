// The standard library's `withUnsafeBytes` and `withUnsafeMutableBytes`
// rethrow, which makes what they throw `any Error`. Code that is also built
// as Embedded Swift throws typed errors only (docs/guest.md), so it reaches an
// array's bytes through these, over the typed-throwing buffer pointers.

extension Array where Element == UInt8 {
    /// `withUnsafeBytes`, throwing what `body` throws.
    public func withRawBytes<Result, Failure: Error>(
        _ body: (UnsafeRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withUnsafeBufferPointer { (buffer) throws(Failure) in try body(UnsafeRawBufferPointer(buffer)) }
    }

    /// `withUnsafeMutableBytes`, throwing what `body` throws.
    public mutating func withMutableRawBytes<Result, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withUnsafeMutableBufferPointer { (buffer) throws(Failure) in try body(UnsafeMutableRawBufferPointer(buffer)) }
    }
}
