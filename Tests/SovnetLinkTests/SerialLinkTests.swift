import CSovnetShim
import Foundation
import Glibc
import Testing
@testable import SovnetLink

/// The `vm` framing over a serial line: markers, resynchronisation, and the
/// raw mode of a real pseudo-terminal.
@Suite struct SerialLinkTests {
    let head = Framing.vmRequestHead()

    func framed(_ frames: [[UInt8]]) -> [UInt8] {
        frames.flatMap { [UInt8(truncatingIfNeeded: $0.count), UInt8(truncatingIfNeeded: $0.count >> 8)] + $0 }
    }

    /// Feeds `bytes` in chunks of `chunk` and collects the frames.
    func decode(_ decoder: FrameStreamDecoder, _ bytes: [UInt8], chunk: Int = .max) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + min(chunk, bytes.count - offset))
            var rest = bytes[offset..<end]
            while !rest.isEmpty {
                let taken = rest.withUnsafeBytes { decoder.append($0) }
                rest = rest.dropFirst(taken)
                try decoder.forEachFrame { frames.append(Array($0)) }
            }
            offset = end
        }
        return frames
    }

    func hostDecoder(maximum: Int = 1518) -> FrameStreamDecoder {
        FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: maximum, marker: .guestHead())
    }

    @Test func discardsUntilTheFirstHeadThenReadsFrames() throws {
        let frames = (0..<5).map { testFrame(length: 60 + $0, seed: $0) }
        let junk = Array(framed([testFrame(length: 400, seed: 9)]).dropFirst(123))
        let decoder = hostDecoder()
        #expect(try decode(decoder, junk + head + framed(frames)) == frames)
        #expect(decoder.discardedBytes == junk.count)
        #expect(decoder.markersRead == 1 && decoder.isSynchronized)
    }

    @Test func markersBetweenFramesAreTakenAtAnySplit() throws {
        let frames = (0..<4).map { testFrame(length: 100 + $0, seed: $0) }
        let stream = head + framed(Array(frames[..<2])) + head + framed(Array(frames[2...])) + head
        for chunk in [1, 2, 3, 7, 64, 85, 86, 500] {
            let decoder = hostDecoder()
            #expect(try decode(decoder, stream, chunk: chunk) == frames, "chunks of \(chunk)")
            #expect(decoder.markersRead == 3 && decoder.discardedBytes == 0, "chunks of \(chunk)")
        }
    }

    @Test func aLengthNoFrameCanHaveLosesStepUntilTheNextMarker() throws {
        let before = testFrame(length: 80, seed: 1)
        let after = testFrame(length: 90, seed: 2)
        let decoder = hostDecoder()
        let stream = head + framed([before]) + [0x00, 0x00] + [7, 7, 7] + head + framed([after])
        #expect(try decode(decoder, stream) == [before, after])
        #expect(decoder.lostSynchronization == 1 && decoder.markersRead == 2)
        #expect(decoder.discardedBytes == 5)
    }

    @Test func aFrameCutShortCostsOneFrameAndTheStreamRecovers() throws {
        // The writer restarted 40 bytes into a 1000-byte frame. Its length
        // makes the next 962 bytes frame bytes (delivered as one frame that
        // the receiver's own checks drop); the length after them is
        // impossible, and the decoder finds the next head.
        let cut = Array(framed([testFrame(length: 1000, seed: 3)]).prefix(40))
        let filler = [UInt8](repeating: 0xEE, count: 962)
        let after = testFrame(length: 90, seed: 2)
        let decoder = hostDecoder()
        let frames = try decode(decoder, head + cut + filler + [0x01, 0x00, 9, 9] + head + framed([after]))
        #expect(frames.map(\.count) == [1000, 90] && frames.last == after)
        #expect(decoder.lostSynchronization == 1 && decoder.markersRead == 2)
    }

    @Test func aFrameThatLooksLikeAMarkerStartIsStillAFrame() throws {
        // Length 0x4F50 ("PO") with jumbo frames, content not a head.
        var frame = testFrame(length: 0x4F50, seed: 4)
        frame[0] = UInt8(ascii: "S")
        frame[1] = UInt8(ascii: "X")
        let decoder = hostDecoder(maximum: 65535)
        #expect(try decode(decoder, head + framed([frame]), chunk: 1000) == [frame])
    }

    @Test func hostRepliesNameTheirSession() {
        let reply = SerialMarker.hostReply(session: 0xDEAD_BEEF_0000_0042)
        #expect(reply.count == SerialMarker.hostReply.length)
        #expect(String(decoding: reply, as: UTF8.self) == "HTTP/1.1 200 OK\r\nSovnet-Session: deadbeef00000042\r\n\r\n")
        #expect(reply.withUnsafeBytes { SerialMarker.session(inHostReply: $0) } == 0xDEAD_BEEF_0000_0042)
        #expect([UInt8](repeating: 0, count: 3).withUnsafeBytes { SerialMarker.session(inHostReply: $0) } == nil)
    }

    @Test func guestAndHostEndsSynchroniseAndMoveFrames() throws {
        let (guestSide, hostSide) = socketPair()
        let guest = StreamFrameConnection(framing: .vm, readDescriptor: guestSide, writeDescriptor: guestSide,
                                          maximumFrameLength: 1518, serial: .guest(requestPath: "/connect"))
        let host = StreamFrameConnection(framing: .vm, readDescriptor: hostSide, writeDescriptor: hostSide,
                                         maximumFrameLength: 1518, serial: .host(session: 77))
        // The host end's first bytes: stale frame data before the guest opened.
        writeAll(guestSide, Array(framed([testFrame(length: 300, seed: 5)]).suffix(100)))
        try guest.beginSerialLink()
        let toHost = testFrame(length: 200, seed: 6)
        try guest.send(toHost)
        var atHost: [[UInt8]] = []
        _ = try host.receive { atHost.append(Array($0)) }
        #expect(atHost == [toHost])
        #expect(host.decoder.discardedBytes == 100)
        // The host answered the head; frames it sends follow the reply.
        let toGuest = testFrame(length: 150, seed: 7)
        try host.enqueue(toGuest)
        var atGuest: [[UInt8]] = []
        _ = try guest.receive { atGuest.append(Array($0)) }
        #expect(atGuest == [toGuest] && guest.peerSession == 77)
        // The guest repeats its head on its timer; nothing is due before.
        let due = try #require(guest.linkDeadline)
        try guest.linkTimer(now: due - .milliseconds(1))
        try guest.linkTimer(now: due)
        #expect(try #require(guest.linkDeadline) > due)
        _ = try host.receive { _ in Issue.record("a head is not a frame") }
        #expect(host.decoder.markersRead == 2)
        guest.close()
        host.close()
    }

    @Test func aPseudoTerminalIsPutInRawMode() throws {
        var path = [CChar](repeating: 0, count: 64)
        let master = sovnet_open_pty(&path, path.count)
        try #require(master >= 0)
        defer { close(master) }
        let name = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fd = try SerialDevice.open(name)
        defer { close(fd) }
        // Every byte value, line endings and control characters among them,
        // crosses unchanged, and nothing is echoed back.
        let bytes = (0...255).map(UInt8.init) + [0x0A, 0x0D, 0x03, 0x11, 0x13, 0x04]
        writeAll(master, bytes)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = Date().addingTimeInterval(5)
        while received.count < bytes.count, Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 100) > 0 else { continue }
            let count = read(fd, &buffer, buffer.count)
            if count > 0 { received += buffer[..<count] }
        }
        #expect(received == bytes)
        var echo = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        #expect(poll(&echo, 1, 100) == 0, "no echo")
        #expect(throws: LinkError.self) { _ = try SerialDevice.open("/etc/hostname") }
    }

    @Test func serialURLs() throws {
        #expect(try Endpoint(url: "serial:///dev/hvc1") == .serial(path: "/dev/hvc1"))
        #expect(try Endpoint(url: "serial:///dev/hvc1").description == "serial:///dev/hvc1")
        #expect(throws: EndpointError.self) { _ = try Endpoint(url: "serial://hvc1") }
        #expect(throws: LinkError.self) { try FrameTransport.checkCompatible(.serial(path: "/dev/hvc1"), .qemu) }
    }
}
