// Times the pieces of the packet path in isolation: checksums, parsing a
// captured TCP frame, the stream decoder, and framed connections over a unix
// socket pair. Each measurement is bounded by a count and reports the median
// of five runs.
import Dispatch
import Foundation
import Glibc
import SovnetLink
import SovnetWire

/// Runs `body` five times and returns the median duration in seconds.
func median(_ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<5 {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        times.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
    return times.sorted()[2]
}

func report(_ name: String, _ value: Double, _ unit: String) {
    print(name.padding(toLength: 52, withPad: " ", startingAt: 0) + String(format: "%10.2f %@", value, unit))
}

func checksum() {
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 1500, alignment: 16)
    defer { bytes.deallocate() }
    bytes.initializeMemory(as: UInt8.self, repeating: 0xA5)
    let rounds = 200_000
    var sink: UInt16 = 0
    let seconds = median {
        for round in 0..<rounds {
            // A changing byte keeps the sum from being hoisted out of the loop.
            bytes[round % 1500] = UInt8(truncatingIfNeeded: round)
            sink &+= InternetChecksum.of(UnsafeRawBufferPointer(bytes))
        }
    }
    report("checksum of 1500 bytes", Double(rounds * 1500) / seconds / 1e9, "GB/s")
    if sink == 1 { print("") }
}

func parseTCPFrame() throws {
    let frame = try PcapReader.frames(at: "../captures/tcp-http.pcap")[7].bytes
    let rounds = 1_000_000
    var sink = 0
    let seconds = try median {
        try frame.withUnsafeBytes { raw in
            for _ in 0..<rounds {
                let ip = try IPv4View(try EthernetView(raw).payload)
                let tcp = try TCPView(ip.payload, source: ip.source, destination: ip.destination)
                sink &+= Int(tcp.window) &+ (try tcp.options().timestamps?.value).map(Int.init)!
            }
        }
    }
    report("parse Ethernet+IPv4+TCP, checksums verified (\(frame.count) B)", seconds / Double(rounds) * 1e9, "ns/frame")
    if sink == 1 { print("") }
}

func decoder(frameLength: Int) throws {
    var stream: [UInt8] = []
    for _ in 0..<64 { stream += [UInt8(frameLength & 0xFF), UInt8(frameLength >> 8)] + [UInt8](repeating: 1, count: frameLength) }
    let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: 65535)
    let rounds = 20_000
    var frames = 0
    let seconds = try median {
        try stream.withUnsafeBytes { raw in
            for _ in 0..<rounds {
                var offset = 0
                while offset < raw.count {
                    offset += decoder.append(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                    frames += try decoder.forEachFrame { _ in }
                }
            }
        }
    }
    report("decode vm stream, \(frameLength)-byte frames (memcpy in)", Double(rounds * 64 * frameLength * 8) / seconds / 1e9, "Gbit/s")
}

/// One thread sends batches of frames through a framed unix socket pair;
/// this thread receives them.
func socketPair(framing: Framing, frameLength: Int, frames: Int) throws {
    var fds: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { fatalError("socketpair") }
    for fd in fds {
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }
    let sender = StreamFrameConnection(framing: framing, readDescriptor: fds[0], writeDescriptor: fds[0], maximumFrameLength: 65535)
    let receiver = StreamFrameConnection(framing: framing, readDescriptor: fds[1], writeDescriptor: fds[1], maximumFrameLength: 65535)
    let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: frameLength, alignment: 16)
    payload.initializeMemory(as: UInt8.self, repeating: 7)
    let batch = [UnsafeRawBufferPointer](repeating: UnsafeRawBufferPointer(payload), count: 64)
    nonisolated(unsafe) let unsafeSender = sender
    nonisolated(unsafe) let unsafeBatch = batch
    let seconds = try median {
        let done = DispatchSemaphore(value: 0)
        Thread {
            for _ in 0..<(frames / 64) { try! unsafeSender.send(unsafeBatch) }
            done.signal()
        }.start()
        var received = 0
        while received < frames / 64 * 64 {
            if case .frames(let count) = try receiver.receive({ _ in }) { received += count }
        }
        done.wait()
    }
    report("\(framing) over unix socketpair, \(frameLength)-byte frames", Double(frames * frameLength * 8) / seconds / 1e9, "Gbit/s")
    payload.deallocate()
}

print("sovnet micro-benchmarks (median of 5 runs)")
checksum()
try parseTCPFrame()
try decoder(frameLength: 1514)
try decoder(frameLength: 65535)
try socketPair(framing: .vm, frameLength: 1514, frames: 400_000)
try socketPair(framing: .qemu, frameLength: 1514, frames: 400_000)
try socketPair(framing: .vm, frameLength: 65535, frames: 40_000)
