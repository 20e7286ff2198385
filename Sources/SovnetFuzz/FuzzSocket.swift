// A host socket in memory for the NAT's TCP core under a fuzzer: what the
// guest's bytes become on the host, and what the host has for the guest.
// It checks the core's side of the contract: nothing is acknowledged that
// was never sent (consume only what was peeked), nothing is written after
// FIN or after close, and the host gets no more bytes than guests sent.
import SovnetCore

/// TCP payload bytes guests sent toward the NAT, and what its sockets took.
final class FuzzLedger {
    /// Bytes in guests' TCP segments and fragments, repeats included.
    var offered = 0
    var written = 0
}

/// The host end of one fuzzed TCP flow.
final class FuzzSocket: FlowSocket {
    private let ledger: FuzzLedger
    var room = 1 << 16
    var incoming: [UInt8] = []
    private var peekOffset = 0
    var endOfStream = false
    var failure: Int32?
    private(set) var closed = false
    private var shutDown = false
    /// What the connect under way ends with (0: connected), for `finishConnect`.
    var connectResult: Int32 = 0

    init(ledger: FuzzLedger) {
        self.ledger = ledger
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        expect(!closed && !shutDown, "a write after \(closed ? "close" : "FIN")")
        if failure != nil { return nil }
        let taken = min(bytes.count, room)
        ledger.written += taken
        room -= taken
        expect(ledger.written <= ledger.offered, "the host got \(ledger.written) bytes; guests sent \(ledger.offered)")
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
    func finishConnect() -> Int32 { connectResult }

    func close(reset: Bool) { closed = true }
}
