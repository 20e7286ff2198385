import Foundation
import Glibc
import Testing
@testable import SovnetLink

/// Every framing over real sockets, dialled and served by sovnet's own
/// transport code, and against raw peers that send exactly the bytes
/// gvforwarder, QEMU or vfkit would.
@Suite struct FramedConnectionTests {
    /// Receives until `count` frames have arrived or the peer closes.
    func receive(_ connection: FrameEndpoint, count: Int) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        while frames.count < count {
            let status = try connection.receive { frames.append(Array($0)) }
            if status == .closed { break }
        }
        return frames
    }

    /// Sends `frames` from one side and checks they all arrive, in order, on
    /// the other; the sender runs on its own thread so large batches cannot
    /// deadlock on full socket buffers.
    func exchange(from sender: FrameEndpoint, to receiver: FrameEndpoint, _ frames: [[UInt8]]) throws {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var sendError: Error?
        nonisolated(unsafe) let unsafeSender = sender
        Thread {
            do {
                var views: [UnsafeRawBufferPointer] = []
                let storage = frames.map { frame -> UnsafeMutableRawBufferPointer in
                    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 1)
                    copy.copyBytes(from: frame)
                    return copy
                }
                views = storage.map { UnsafeRawBufferPointer($0) }
                try unsafeSender.send(views)
                storage.forEach { $0.deallocate() }
            } catch {
                sendError = error
            }
            done.signal()
        }.start()
        let got = try receive(receiver, count: frames.count)
        done.wait()
        if let sendError { throw sendError }
        #expect(got == frames)
    }

    @Test(arguments: [Framing.vm, .qemu])
    func streamFramingsBothWays(framing: Framing) throws {
        let directory = TemporaryDirectory()
        let endpoint = Endpoint.unix(path: directory.file("net.sock"))
        let listener = try FrameListener(endpoint: endpoint, framing: framing, maximumFrameLength: 9018)
        let client = try FrameTransport.connect(to: endpoint, framing: framing, maximumFrameLength: 9018)
        let server = try listener.accept()
        let frames = (0..<3000).map { testFrame(length: 14 + ($0 * 37) % 9004, seed: $0) }
        try exchange(from: client, to: server, frames)
        try exchange(from: server, to: client, frames)
        client.close()
        #expect(try server.receive { _ in } == .closed)
        if framing == .vm {
            let head = (server as! StreamFrameConnection).decoder.requestHead
            #expect(head == String(decoding: Framing.vmRequestHead(), as: UTF8.self))
        }
    }

    @Test func tcpEndpointOnLoopback() throws {
        let listener = try FrameListener(endpoint: .tcp(host: "127.0.0.1", port: 0), framing: .qemu)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener.descriptor, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)
        let client = try FrameTransport.connect(to: .tcp(host: "127.0.0.1", port: port), framing: .qemu)
        let server = try listener.accept()
        try exchange(from: client, to: server, [testFrame(length: 64, seed: 1), testFrame(length: 1514, seed: 2)])
    }

    /// The serving side of `vm` against the exact bytes gvforwarder writes,
    /// sent one byte per write so every read is partial.
    @Test func vmServerAgainstByteAtATimePeer() throws {
        let (peer, ours) = socketPair()
        let server = StreamFrameConnection(framing: .vm, readDescriptor: ours, writeDescriptor: ours,
                                           maximumFrameLength: 1518, expectedRequestPath: "/connect")
        let frame = testFrame(length: 98, seed: 9)
        let bytes = Framing.vmRequestHead() + [98, 0] + frame + [98, 0] + frame
        Thread {
            for byte in bytes { writeAll(peer, [byte]) }
        }.start()
        #expect(try receive(server, count: 2) == [frame, frame])
        close(peer)
        #expect(try server.receive { _ in } == .closed)
    }

    @Test func badLengthFromPeerClosesWithReason() throws {
        for (bytes, expected) in [([UInt8]([0, 0, 0, 0]), FramingError.zeroLength),
                                  ([0, 0, 0xFF, 0xFF], .oversizedFrame(length: 65535, maximum: 1518)),
                                  ([0, 0, 0, 5, 1, 2, 3, 4, 5], .runtFrame(length: 5))] {
            let (peer, ours) = socketPair()
            let server = StreamFrameConnection(framing: .qemu, readDescriptor: ours, writeDescriptor: ours,
                                               maximumFrameLength: 1518)
            writeAll(peer, bytes)
            #expect(throws: LinkError.framing(expected)) {
                while true { _ = try server.receive { _ in } }
            }
            close(peer)
        }
    }

    @Test func peerClosingMidFrameIsReported() throws {
        let (peer, ours) = socketPair()
        let server = StreamFrameConnection(framing: .stdio, readDescriptor: ours, writeDescriptor: ours,
                                           maximumFrameLength: 1518)
        writeAll(peer, [60, 0, 1, 2, 3])
        close(peer)
        #expect(throws: LinkError.framing(.closedMidFrame(bufferedBytes: 5))) {
            while true { _ = try server.receive { _ in } }
        }
    }

    /// stdio framing over two pipes, as `-listen-stdio` runs under a parent.
    @Test func stdioOverPipes() throws {
        var toUs: [Int32] = [0, 0]
        var fromUs: [Int32] = [0, 0]
        #expect(pipe(&toUs) == 0 && pipe(&fromUs) == 0)
        let connection = StreamFrameConnection(framing: .stdio, readDescriptor: toUs[0], writeDescriptor: fromUs[1],
                                               maximumFrameLength: 1518)
        let frame = testFrame(length: 60, seed: 4)
        writeAll(toUs[1], [60, 0] + frame)
        #expect(try receive(connection, count: 1) == [frame])
        try connection.send(frame)
        var echoed = [UInt8](repeating: 0, count: 62)
        #expect(read(fromUs[0], &echoed, 62) == 62)
        #expect(echoed == [60, 0] + frame)
        close(toUs[1])
        close(fromUs[0])
    }

    @Test func bessOverSeqpacket() throws {
        let directory = TemporaryDirectory()
        let endpoint = Endpoint.unixPacket(path: directory.file("bess.sock"))
        let listener = try FrameListener(endpoint: endpoint, framing: .bess)
        let client = try FrameTransport.connect(to: endpoint, framing: .bess)
        let server = try listener.accept()
        let frames = (0..<200).map { testFrame(length: 14 + $0 * 7, seed: $0) }
        try exchange(from: client, to: server, frames)
        try exchange(from: server, to: client, frames)
        // A runt packet is dropped and counted; the connection stays up.
        let (peer, ours) = socketPair(Int32(SOCK_SEQPACKET.rawValue))
        let raw = PacketFrameConnection(framing: .bess, descriptor: ours, maximumFrameLength: 1518)
        writeAll(peer, [1, 2, 3])
        writeAll(peer, testFrame(length: 60, seed: 1))
        #expect(try receive(raw, count: 1) == [testFrame(length: 60, seed: 1)])
        #expect(raw.drops.runt == 1)
        close(peer)
        #expect(try raw.receive { _ in } == .closed)
    }

    @Test func vfkitLearnsPeerFromGreeting() throws {
        let directory = TemporaryDirectory()
        let endpoint = Endpoint.unixDatagram(path: directory.file("vfkit.sock"))
        let listener = try FrameListener(endpoint: endpoint, framing: .vfkit, maximumFrameLength: 1518)
        let server = try listener.accept() as! PacketFrameConnection
        // Before the peer is known, frames to it are counted, not sent.
        try server.send(testFrame(length: 60, seed: 0))
        #expect(server.drops.noPeer == 1)
        let client = try FrameTransport.connect(to: endpoint, framing: .vfkit, maximumFrameLength: 1518)
        let frames = (0..<100).map { testFrame(length: 60 + $0, seed: $0) }
        try exchange(from: client, to: server, frames)
        #expect(server.hasPeer)
        try exchange(from: server, to: client, frames)
        // An oversized datagram is dropped and counted.
        let big = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try Sockets.withAddress(of: endpoint) { address, length in
            let oversized = [UInt8](repeating: 1, count: 2000)
            _ = oversized.withUnsafeBytes { sendto(big, $0.baseAddress, $0.count, 0, address, length) }
        }
        try client.send(testFrame(length: 70, seed: 1))
        #expect(try receive(server, count: 1) == [testFrame(length: 70, seed: 1)])
        #expect(server.drops.oversized == 1)
        close(big)
    }

    @Test func framingMustFitTheSocketKind() {
        #expect(throws: LinkError.self) {
            _ = try FrameListener(endpoint: .unix(path: "/tmp/unused-sovnet.sock"), framing: .vfkit)
        }
        #expect(throws: LinkError.self) {
            _ = try FrameTransport.connect(to: .unixPacket(path: "/tmp/unused-sovnet.sock"), framing: .qemu)
        }
    }
}
