// The stream framings' decoder under a fuzzer, in each of its setups: qemu
// (uint32 big-endian lengths), vm (a request head, then uint16
// little-endian lengths), stdio, and the vm framing on a serial line as the
// host and as the guest read it (markers, resynchronisation). The first byte
// picks the setup and the mode:
//
//   raw         the rest is the stream, fed in pieces of a size the second
//               byte picks: the decoder may reject it, never trap, and
//               every frame it returns has a length a frame may have;
//   round trip  the rest is a list of frames, encoded as the peer would
//               (with markers between some of them on a serial line) and
//               fed in pieces: exactly those frames come out, in order.
import SovnetFraming

enum StreamTarget {
    static let maximumFrameLength = 4000

    private enum Setup: CaseIterable, CustomStringConvertible {
        case qemu, vm, stdio, serialHost, serialGuest
        var description: String {
            switch self {
            case .qemu: "qemu"
            case .vm: "vm"
            case .stdio: "stdio"
            case .serialHost: "serial-host"
            case .serialGuest: "serial-guest"
            }
        }
    }

    static func run(_ bytes: [UInt8]) -> Set<String> {
        var input = FuzzInput(bytes)
        let mode = input.byte()
        let setup = Setup.allCases[Int(mode & 0x7) % Setup.allCases.count]
        let piece = Int(input.byte()) * 7 + 1
        let decoder = makeDecoder(setup)
        if mode & 0x80 == 0 {
            var frames: [Int] = []
            let accepted = feed(input.rest(), to: decoder, piece: piece) { frames.append($0.count) }
            expect(frames.allSatisfy { (14...maximumFrameLength).contains($0) }, "frame lengths \(frames)")
            return [accepted ? "accepted" : "rejected", frames.isEmpty ? "no-frames" : "frames", "\(setup)"]
        } else {
            var sent: [[UInt8]] = []
            while !input.isAtEnd {
                var frame = Array(input.chunk().prefix(maximumFrameLength))
                if frame.count < 14 { frame += [UInt8](repeating: 0, count: 14 - frame.count) }
                sent.append(frame)
            }
            var received: [[UInt8]] = []
            let ok = feed(encode(sent, setup), to: decoder, piece: piece) { received.append(Array($0)) }
            expect(ok && received == sent, "\(setup): sent \(sent.map(\.count)), received \(received.map(\.count))")
            return ["round-trip", "\(setup)"]
        }
    }

    /// For each setup, the frames in round-trip mode, and the stream a peer
    /// would write for them in raw mode.
    static func seeds(from frames: [[UInt8]]) -> [[UInt8]] {
        let kept = Array(frames.filter { (14...maximumFrameLength).contains($0.count) }.prefix(24))
        return Setup.allCases.enumerated().flatMap { index, setup in
            [[0x80 | UInt8(index), 13] + kept.flatMap(FuzzInput.chunk), [UInt8(index), 13] + encode(kept, setup)]
        }
    }

    private static func makeDecoder(_ setup: Setup) -> FrameStreamDecoder {
        switch setup {
        case .qemu: FrameStreamDecoder(prefix: .bigEndian32, maximumFrameLength: maximumFrameLength, bufferCapacity: 0)
        case .vm: FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: maximumFrameLength,
                                     expectedRequestPath: "/connect", bufferCapacity: 0)
        case .stdio: FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: maximumFrameLength, bufferCapacity: 0)
        case .serialHost: FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: maximumFrameLength,
                                             marker: SerialRole.host(session: 1).incomingMarker, bufferCapacity: 0)
        case .serialGuest: FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: maximumFrameLength,
                                              marker: SerialRole.guest(requestPath: "/connect").incomingMarker,
                                              bufferCapacity: 0)
        }
    }

    /// The stream a peer writes for `frames`.
    private static func encode(_ frames: [[UInt8]], _ setup: Setup) -> [UInt8] {
        let prefix: LengthPrefix = setup == .qemu ? .bigEndian32 : .littleEndian16
        let marker: [UInt8]? = switch setup {
        case .serialHost: Framing.vmRequestHead()
        case .serialGuest: SerialMarker.hostReply(session: 0x1234_5678_9ABC_DEF0)
        default: nil
        }
        var stream = setup == .vm ? Framing.vmRequestHead() : marker ?? []
        for frame in frames {
            var length = [UInt8](repeating: 0, count: prefix.size)
            length.withUnsafeMutableBytes { prefix.store(frame.count, at: $0.baseAddress!) }
            stream += length + frame
            if let marker, frame[0] & 1 == 1 { stream += marker }
        }
        return stream
    }

    /// Feeds `stream` in pieces of `piece` bytes, handing each frame to `body`;
    /// false when the decoder rejected the stream.
    private static func feed(_ stream: [UInt8], to decoder: FrameStreamDecoder, piece: Int,
                             _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        var offset = 0
        do {
            while offset < stream.count {
                let end = min(stream.count, offset + piece)
                var taken = offset
                var refusals = 0
                while taken < end {
                    let count = stream[taken..<end].withUnsafeBytes { decoder.append($0) }
                    try decoder.forEachFrame { body($0) }
                    taken += count
                    refusals = count == 0 ? refusals + 1 : 0
                    expect(refusals < 2, "the decoder takes no more bytes, though it returned what it could")
                }
                offset = end
            }
            try decoder.forEachFrame { body($0) }
            try decoder.finish()
            return true
        } catch {
            return false
        }
    }
}
