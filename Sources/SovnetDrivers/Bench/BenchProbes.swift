// What `sovnet bench` measures from inside the guest, and the servers on
// the host side's loopback that answer it. Each runs on a thread that has
// entered its namespace (`NamespaceThread`), with plain blocking sockets, so
// the figures are the stack's and the kernel's, not a runtime's. Every loop
// is bounded by a count and a deadline.
//
//   ICMP echo    a ping socket to the gateway, one request per millisecond
//   UDP echo     64-byte datagrams to the host's loopback, one at a time
//   TCP RR       64-byte request and response on one connection, back to back
//   connections  connect, one 64-byte exchange, close, one after another
import Foundation
import Glibc
import Histogram
import SovnetLink
import SovnetWire

/// Latency percentiles in microseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    public var samples: Int
    public var lost: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var mean: Double
    public var max: Double

    init(_ histogram: Histogram<UInt64>, lost: Int) {
        func micros(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        samples = Int(histogram.totalCount)
        self.lost = lost
        p50 = micros(50)
        p90 = micros(90)
        p99 = micros(99)
        p999 = micros(99.9)
        mean = histogram.mean / 1000
        max = Double(histogram.max) / 1000
    }
}

/// The probes, run from the guest's namespace.
enum BenchProbes {
    static let payload = 64

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        UInt64(max(0, duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000))
    }

    /// Echo requests to `gateway` through a ping socket, one per millisecond.
    static func icmpEcho(gateway: String, samples: Int, deadline: Duration) throws -> LatencySummary {
        let fd = socket(AF_INET, SocketType.datagram, Int32(IPPROTO_ICMP))
        guard fd >= 0 else { throw LaunchError("ping socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try connectTo(fd, gateway, 0)
        setTimeout(fd, milliseconds: 1000)
        var histogram = histogram()
        var lost = 0
        var request = [UInt8](repeating: 0, count: 8 + 56)
        request[0] = 8
        var reply = [UInt8](repeating: 0, count: 2048)
        let end = ContinuousClock.now + deadline
        for sequence in 0..<samples where ContinuousClock.now < end {
            request[6] = UInt8(sequence >> 8 & 0xFF)
            request[7] = UInt8(sequence & 0xFF)
            let sent = ContinuousClock.now
            guard send(fd, request, request.count, 0) == request.count else { lost += 1; continue }
            var answered = false
            while true {
                let count = recv(fd, &reply, reply.count, 0)
                guard count >= 8 else { break }
                if reply[0] == 0, reply[6] == request[6], reply[7] == request[7] {
                    answered = true
                    break
                }
            }
            if answered { histogram.record(nanoseconds(ContinuousClock.now - sent)) } else { lost += 1 }
            usleep(1000)
        }
        return LatencySummary(histogram, lost: lost)
    }

    /// 64-byte datagrams to a UDP echo server, one answer awaited each.
    static func udpEcho(host: String, port: UInt16, samples: Int, deadline: Duration) throws -> LatencySummary {
        let fd = socket(family(of: host), SocketType.datagram, 0)
        guard fd >= 0 else { throw LaunchError("udp socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try connectTo(fd, host, port)
        setTimeout(fd, milliseconds: 1000)
        var histogram = histogram()
        var lost = 0
        var message = [UInt8](repeating: 0x55, count: payload)
        var answer = [UInt8](repeating: 0, count: payload)
        let end = ContinuousClock.now + deadline
        for index in 0..<samples where ContinuousClock.now < end {
            message[0] = UInt8(truncatingIfNeeded: index)
            let sent = ContinuousClock.now
            guard send(fd, message, payload, 0) == payload else { lost += 1; continue }
            if recv(fd, &answer, payload, 0) == payload, answer[0] == message[0] {
                histogram.record(nanoseconds(ContinuousClock.now - sent))
            } else {
                lost += 1
            }
        }
        return LatencySummary(histogram, lost: lost)
    }

    /// 64-byte requests and responses on one TCP connection.
    static func tcpRequestResponse(host: String, port: UInt16, samples: Int, deadline: Duration) throws -> LatencySummary {
        let fd = try tcpConnect(host, port)
        defer { close(fd) }
        setTimeout(fd, milliseconds: 2000)
        var histogram = histogram()
        var request = [UInt8](repeating: 0x33, count: payload)
        let end = ContinuousClock.now + deadline
        for index in 0..<samples where ContinuousClock.now < end {
            request[0] = UInt8(truncatingIfNeeded: index)
            let sent = ContinuousClock.now
            guard exchange(fd, &request) else { throw LaunchError("TCP exchange \(index) failed: \(String(cString: strerror(errno)))") }
            histogram.record(nanoseconds(ContinuousClock.now - sent))
        }
        return LatencySummary(histogram, lost: 0)
    }

    /// New connections, each with one exchange, for `deadline` or `limit` connections.
    static func connectionRate(host: String, port: UInt16, limit: Int, deadline: Duration) throws -> (perSecond: Double, latency: LatencySummary) {
        var histogram = histogram()
        var request = [UInt8](repeating: 0x44, count: payload)
        let start = ContinuousClock.now
        let end = start + deadline
        var completed = 0
        while completed < limit, ContinuousClock.now < end {
            let begun = ContinuousClock.now
            let fd = try tcpConnect(host, port)
            setTimeout(fd, milliseconds: 2000)
            let ok = exchange(fd, &request)
            close(fd)
            guard ok else { throw LaunchError("connection \(completed) failed: \(String(cString: strerror(errno)))") }
            histogram.record(nanoseconds(ContinuousClock.now - begun))
            completed += 1
        }
        let elapsed = Double(nanoseconds(ContinuousClock.now - start)) / 1e9
        return (Double(completed) / max(elapsed, 1e-9), LatencySummary(histogram, lost: 0))
    }

    /// Writes the request and reads as many bytes back.
    static func exchange(_ fd: Int32, _ request: inout [UInt8]) -> Bool {
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var received = 0
        var answer = [UInt8](repeating: 0, count: request.count)
        while received < request.count {
            let count = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + received, $0.count - received, 0) }
            guard count > 0 else { return false }
            received += count
        }
        return answer == request
    }

    static func tcpConnect(_ host: String, _ port: UInt16) throws -> Int32 {
        let fd = socket(family(of: host), SocketType.stream, 0)
        guard fd >= 0 else { throw LaunchError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        do {
            try connectTo(fd, host, port)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    static func connectTo(_ fd: Int32, _ host: String, _ port: UInt16) throws {
        var (address, length) = try socketAddress(host, port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        guard result == 0 else { throw LaunchError("connect \(host) port \(port): \(String(cString: strerror(errno)))") }
    }

    /// IPv6 for an address with colons, else IPv4.
    static func family(of host: String) -> Int32 { host.contains(":") ? AF_INET6 : AF_INET }

    /// The socket address of `host` (IPv4 or IPv6 text) and `port`.
    static func socketAddress(_ host: String, _ port: UInt16) throws -> (sockaddr_storage, socklen_t) {
        guard let address = IPAddress(host) else { throw LaunchError("bad address \(host)") }
        return InetAddress.make(address, port)
    }

    static func setTimeout(_ fd: Int32, milliseconds: Int) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
}

/// TCP and UDP echo servers on a loopback address (127.0.0.1 or ::1) of
/// the namespace whose thread starts them; `stop` ends them.
final class BenchEchoServers: @unchecked Sendable {
    let tcpPort: UInt16
    let udpPort: UInt16
    private let tcpListener: Int32
    private let udpSocket: Int32

    /// Binds both to `address` (in the calling thread's namespace) and serves each on a thread.
    init(address: String, tcpPort: UInt16, udpPort: UInt16) throws {
        self.tcpPort = tcpPort
        self.udpPort = udpPort
        tcpListener = try Self.bound(SocketType.stream, address, tcpPort)
        udpSocket = try Self.bound(SocketType.datagram, address, udpPort)
        guard listen(tcpListener, 1024) == 0 else { throw LaunchError("listen: \(String(cString: strerror(errno)))") }
        let listener = tcpListener
        let udp = udpSocket
        Thread {
            while true {
                let connection = accept(listener, nil, nil)
                guard connection >= 0 else {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                Thread { Self.echo(connection) }.start()
            }
        }.start()
        Thread {
            var buffer = [UInt8](repeating: 0, count: 65536)
            var peer = sockaddr_storage()
            while true {
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let count = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(udp, &buffer, buffer.count, 0, $0, &length) }
                }
                guard count >= 0 else { return }
                _ = withUnsafePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, buffer, count, 0, $0, length) }
                }
            }
        }.start()
    }

    func stop() {
        shutdown(tcpListener, Int32(SHUT_RDWR))
        shutdown(udpSocket, Int32(SHUT_RDWR))
        close(tcpListener)
        close(udpSocket)
    }

    private static func echo(_ fd: Int32) {
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0, send(fd, buffer, count, Int32(MSG_NOSIGNAL)) == count else { return }
        }
    }

    private static func bound(_ type: Int32, _ host: String, _ port: UInt16) throws -> Int32 {
        var (address, length) = try BenchProbes.socketAddress(host, port)
        let fd = socket(BenchProbes.family(of: host), type | SocketType.closeOnExec, 0)
        guard fd >= 0 else { throw LaunchError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard result == 0 else {
            close(fd)
            throw LaunchError("bind \(host) port \(port): \(String(cString: strerror(errno)))")
        }
        return fd
    }
}
