// A small HTTP/1.1 client over a unix socket (or TCP), for the proxy's
// control API and tailscaled's LocalAPI: one request per connection
// (`Connection: close`), the answer read to the end, with a deadline on
// every step so a wedged server cannot hang the launcher.
import Foundation
import Glibc
import SovnetLink

/// Talks HTTP to one endpoint.
public struct ControlClient: Sendable {
    public let endpoint: Endpoint
    /// The Host header (tailscaled's LocalAPI expects `local-tailscaled.sock`).
    public var host: String
    public var timeout: Duration

    public init(endpoint: Endpoint, host: String = "localhost", timeout: Duration = .seconds(10)) {
        self.endpoint = endpoint
        self.host = host
        self.timeout = timeout
    }

    /// An HTTP answer.
    public struct Response: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// Sends a request and reads the whole answer.
    public func request(_ method: String, _ path: String, body: [UInt8] = []) throws -> Response {
        let fd = try makeConnectedSocket(endpoint)
        defer { close(fd) }
        var time = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n"
        if !body.isEmpty || method == "POST" {
            request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        let bytes = Array((request + "\r\n").utf8) + body
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw LaunchError("\(endpoint): \(String(cString: strerror(errno)))") }
            sent += count
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw LaunchError("\(endpoint): no answer (\(String(cString: strerror(errno))))") }
            if count == 0 { break }
            answer += chunk[..<count]
            guard answer.count <= 16 << 20 else { throw LaunchError("\(endpoint): answer larger than 16 MiB") }
        }
        return try Self.parse(answer, from: endpoint)
    }

    /// Splits an HTTP/1.1 answer into status and body (plain or chunked).
    static func parse(_ answer: [UInt8], from endpoint: Endpoint) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = answer.firstRange(of: separator)?.lowerBound else {
            throw LaunchError("\(endpoint): not an HTTP answer")
        }
        let head = String(decoding: answer[..<end], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let words = lines[0].split(separator: " ")
        guard words.count >= 2, words[0].hasPrefix("HTTP/1."), let status = Int(words[1]) else {
            throw LaunchError("\(endpoint): bad status line '\(lines[0])'")
        }
        var body = Array(answer[(end + 4)...])
        let chunked = lines.dropFirst().contains { $0.lowercased().hasPrefix("transfer-encoding:") && $0.lowercased().contains("chunked") }
        if chunked { body = try dechunk(body, from: endpoint) }
        return Response(status: status, body: body)
    }

    static func dechunk(_ bytes: [UInt8], from endpoint: Endpoint) throws -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].firstRange(of: [13, 10])?.lowerBound else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw LaunchError("\(endpoint): bad chunk size")
            }
            if size == 0 { break }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { throw LaunchError("\(endpoint): truncated chunk") }
            out += bytes[start..<(start + size)]
            index = start + size + 2
        }
        return out
    }

    /// A JSON request and a decoded JSON answer; non-200 answers are errors with their text.
    public func json<Answer: Decodable>(_ method: String, _ path: String, body: (some Encodable)? = nil as String?,
                                        as type: Answer.Type) throws -> Answer {
        let payload = try body.map { Array(try JSONEncoder().encode($0)) } ?? []
        let response = try request(method, path, body: payload)
        guard response.status == 200 else {
            throw LaunchError("\(endpoint)\(path): HTTP \(response.status): \(response.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        do {
            return try JSONDecoder().decode(Answer.self, from: Data(response.body))
        } catch {
            throw LaunchError("\(endpoint)\(path): unexpected JSON: \(error)")
        }
    }
}
