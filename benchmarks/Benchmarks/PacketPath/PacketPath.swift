// The hot functions of sovnet's packet path, one at a time: checksums, the
// parse of a captured TCP frame, the stream decoder, a framed connection
// over a unix socket pair, the NAT's flow lookup, the switch's decision for
// a guest's frame, and building a segment for a guest. Each reports time
// and mallocs per operation (setup is outside the measurement): the steady
// path should allocate nothing.
import Benchmark
import Foundation
import Glibc
import SovnetCore
import SovnetLink
import SovnetWire

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The 8th frame of captures/tcp-http.pcap: an HTTP response segment.
let capturedSegment = try! PcapReader.frames(at: repository.appendingPathComponent("captures/tcp-http.pcap").path)[7].bytes

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal], warmupIterations: 3,
                                           scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 100_000)
    let perBatch = Benchmark.Configuration(metrics: [.wallClock, .mallocCountTotal], warmupIterations: 3,
                                           scalingFactor: .one, maxDuration: .seconds(2), maxIterations: 100_000)

    Benchmark("Internet checksum of 1500 bytes") { benchmark in
        let bytes = [UInt8](repeating: 0xA5, count: 1500)
        benchmark.startMeasurement()
        bytes.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations { blackHole(InternetChecksum.of(raw)) }
        }
    }

    Benchmark("Checksum update for a rewritten address (RFC 1624)") { benchmark in
        var checksum: UInt16 = 0x1C46
        for index in benchmark.scaledIterations {
            checksum = InternetChecksum.update(checksum, old: UInt32(0xC0A8_7FFE), new: UInt32(truncatingIfNeeded: 0x7F00_0001 &+ index))
            blackHole(checksum)
        }
    }

    Benchmark("Parse Ethernet+IPv4+TCP with both checksums verified") { benchmark in
        capturedSegment.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations {
                let ip = try! IPv4View(try! EthernetView(raw).payload)
                blackHole(try! TCPView(ip.payload, source: ip.source, destination: ip.destination).window)
            }
        }
    }

    for length in [1514, 65535] {
        Benchmark("Decode a vm stream of 64 frames of \(length) bytes", configuration: perBatch) { benchmark in
            var stream: [UInt8] = []
            for _ in 0..<64 { stream += [UInt8(length & 0xFF), UInt8(length >> 8)] + [UInt8](repeating: 1, count: length) }
            let decoder = FrameStreamDecoder(prefix: .littleEndian16, maximumFrameLength: 65535)
            benchmark.startMeasurement()
            stream.withUnsafeBytes { raw in
                for _ in benchmark.scaledIterations {
                    var offset = 0
                    while offset < raw.count {
                        offset += decoder.append(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                        blackHole(try! decoder.forEachFrame { blackHole($0.count) })
                    }
                }
            }
        }
    }

    Benchmark("Send and receive 64 frames of 1514 bytes, vm framing over a unix socket pair",
              configuration: perBatch) { benchmark in
        var fds: [Int32] = [0, 0]
        precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        for fd in fds {
            var size: Int32 = 4 << 20
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        let sender = StreamFrameConnection(framing: .vm, readDescriptor: fds[0], writeDescriptor: fds[0], maximumFrameLength: 1518)
        let receiver = StreamFrameConnection(framing: .vm, readDescriptor: fds[1], writeDescriptor: fds[1], maximumFrameLength: 1518)
        let frame = [UInt8](repeating: 7, count: 1514)
        frame.withUnsafeBytes { raw in
            let batch = [UnsafeRawBufferPointer](repeating: raw, count: 64)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try! sender.send(batch)
                var received = 0
                while received < 64 {
                    if case .frames(let count) = try! receiver.receive({ blackHole($0.count) }) { received += count }
                }
            }
        }
        sender.close()
        receiver.close()
    }

    Benchmark("Find a flow among 10,000 TCP flows") { benchmark in
        var flows: [FlowKey: Int] = [:]
        let guest = IPv4Address(192, 168, 127, 2)
        for port in 0..<10_000 {
            flows[FlowKey(guest: guest, guestPort: UInt16(20_000 + port), remote: IPv4Address(127, 0, 0, 1), remotePort: 5201)] = port
        }
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            let key = FlowKey(guest: guest, guestPort: UInt16(20_000 + index % 10_000), remote: IPv4Address(127, 0, 0, 1), remotePort: 5201)
            blackHole(flows[key])
        }
    }

    Benchmark("Switch a guest's TCP segment to the NAT") { benchmark in
        let network = VirtualNetwork(configuration: VirtualNetworkConfiguration())
        let port = network.attach()
        let frame = guestSegment(payload: 1448)
        var deliveries: [Delivery] = []
        deliveries.reserveCapacity(4)
        let now = ContinuousClock.now
        frame.withUnsafeBytes { raw in
            network.receive(raw, from: port, now: now, into: &deliveries)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                deliveries.removeAll(keepingCapacity: true)
                network.receive(raw, from: port, now: now, into: &deliveries)
                blackHole(deliveries.count)
            }
        }
    }

    Benchmark("Build a 1448-byte TCP segment for a guest") { benchmark in
        let frames = GuestFrames(gatewayMAC: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), mtu: 1500)
        let link = GuestLink(port: PortID(1), mac: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE))
        let payload = [UInt8](repeating: 0x42, count: 1448)
        let header = TCPHeader(sourcePort: 5201, destinationPort: 40_000, sequenceNumber: 1, acknowledgmentNumber: 1,
                               flags: [.ack], window: 65_535)
        benchmark.startMeasurement()
        payload.withUnsafeBytes { raw in
            for _ in benchmark.scaledIterations {
                frames.appendTCP(link, source: IPv4Address(192, 168, 127, 254), destination: IPv4Address(192, 168, 127, 2),
                                 header: header, payload: raw)
                frames.removeAll()
            }
        }
    }
}

/// A guest's TCP segment to the host alias, as `sovnet forward` hands it over.
func guestSegment(payload length: Int) -> [UInt8] {
    let payload = [UInt8](repeating: 0x41, count: length)
    let source = IPv4Address(192, 168, 127, 2)
    let destination = IPv4Address(192, 168, 127, 254)
    var frame: [UInt8] = []
    EthernetHeader(destination: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xDD), source: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE),
                   etherType: .ipv4).emit(into: &frame)
    let header = TCPHeader(sourcePort: 40_000, destinationPort: 5201, sequenceNumber: 7, acknowledgmentNumber: 9, flags: [.ack],
                           window: 502)
    IPv4Header(source: source, destination: destination, protocol: .tcp, payloadLength: header.bufferLength + length,
               ttl: 64, identification: 1, dontFragment: true).emit(into: &frame)
    payload.withUnsafeBytes { header.emit(payload: $0, source: source, destination: destination, into: &frame) }
    return frame
}
