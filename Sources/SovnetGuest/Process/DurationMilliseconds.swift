extension Duration {
    /// The duration in milliseconds, with fractions (for logs and reports).
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }

    /// The duration for a log line, in seconds to a tenth below ten
    /// (`0.1 s`, `12 s`): what the guest side writes in both its builds, as
    /// Embedded Swift has no description of a Duration.
    public var secondsText: String {
        let tenths = Int((milliseconds / 100).rounded())
        return tenths < 100 ? "\(tenths / 10).\(tenths % 10) s" : "\(tenths / 10) s"
    }
}
