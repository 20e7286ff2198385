// A host socket in memory for the NAT's TCP core under a fuzzer: what the
// guest's bytes become on the host, and what the host has for the guest.
// It checks the core's side of the contract: nothing is acknowledged that
// was never sent (consume only what was peeked), nothing is written after
// FIN or after close, and nothing is written that the guest did not send.
import SovnetCore

/// The host end of one fuzzed TCP flow.
final class FuzzSocket: FlowSocket {
    /// Payload bytes the guest sent on this flow, in any order, repeats included.
    var offered = 0
    private(set) var written = 0
    var room = 1 << 16
    var incoming: [UInt8] = []
    private var peekOffset = 0
    var endOfStream = false
    var failure: Int32?
    private(set) var closed = false
    private var shutDown = false

    func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        expect(!closed && !shutDown, "a write after \(closed ? "close" : "FIN")")
        if failure != nil { return nil }
        let taken = min(bytes.count, room)
        written += taken
        room -= taken
        expect(written <= offered, "the host got \(written) bytes; the guest sent \(offered)")
        return taken
    }

    func peek(into buffer: UnsafeMutableRawBufferPointer) -> PeekResult {
        expect(!closed, "a peek after close")
        if let failure { return .failed(failure) }
        let available = incoming.count - peekOffset
        guard available > 0 else { return endOfStream ? .endOfStream : .wouldBlock }
        let count = min(available, buffer.count)
        for index in 0..<count { buffer[index] = incoming[peekOffset + index] }
        peekOffset += count
        return .data(count)
    }

    func consume(_ count: Int) {
        expect(count >= 0 && count <= peekOffset, "consumed \(count) of \(peekOffset) bytes peeked")
        incoming.removeFirst(count)
        peekOffset -= count
    }

    func rewind() { peekOffset = 0 }
    var writeSpace: Int { room }
    func shutdownWrite() { shutDown = true }
    func wantWritable(_ wanted: Bool) {}
    func close(reset: Bool) { closed = true }
}
