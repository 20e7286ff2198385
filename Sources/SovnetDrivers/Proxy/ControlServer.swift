// The control API's HTTP server, on SwiftNIO's HTTP/1.1 support. It runs on
// its own event loop thread; the network it reads and changes is shared with
// the proxy's frame loop through `SharedNetwork`'s lock.
//
// It serves `--services` endpoints of its own, and connections that arrive
// on `-listen` sockets with a request other than `POST /connect`: the frame
// loop hands those over with the bytes it has already read, which are fed to
// the HTTP decoder first.
import Dispatch
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SovnetCore
import SovnetLink

/// The virtual network behind a lock, for the frame loop and the API, with
/// what else the API reads of the loop: the NAT's latest statistics and the
/// way to its port forwards.
public final class SharedNetwork: @unchecked Sendable {
    private let lock = NIOLock()
    private let network: VirtualNetwork
    private var natStatistics = NATStatistics()
    private var portForwarding: PortForwarding?
    private var guestProbing: GuestProbing?

    public init(_ network: VirtualNetwork) {
        self.network = network
    }

    public func withLock<T>(_ body: (VirtualNetwork) throws -> T) rethrows -> T {
        try lock.withLock { try body(network) }
    }

    /// What the API's read-only routes show, taken under the lock and
    /// encoded outside it.
    public func snapshot() -> ControlAPI.Snapshot {
        lock.withLock { ControlAPI.Snapshot(network, nat: natStatistics) }
    }

    /// The NAT's statistics as the loop last published them.
    public var nat: NATStatistics {
        get { lock.withLock { natStatistics } }
        set { lock.withLock { natStatistics = newValue } }
    }

    /// Where the API's forwarder routes go; nil until the loop runs.
    public var forwarding: PortForwarding? {
        get { lock.withLock { portForwarding } }
        set { lock.withLock { portForwarding = newValue } }
    }

    /// Where the API's check routes go; nil until the loop runs.
    public var probing: GuestProbing? {
        get { lock.withLock { guestProbing } }
        set { lock.withLock { guestProbing = newValue } }
    }
}

/// Serves the control API.
public final class ControlServer: @unchecked Sendable {
    /// The API's thread, which the gateway's DNS over TCP shares.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let shared: SharedNetwork
    private let logger: Logger
    private let channels = NIOLockedValueBox<[Channel]>([])
    private let paths = NIOLockedValueBox<[String]>([])

    public init(shared: SharedNetwork, logger: Logger) {
        self.shared = shared
        self.logger = logger
    }

    /// Listens on `endpoint` (unix or TCP), with `mode` for a unix socket.
    public func listen(on endpoint: Endpoint, mode: mode_t) throws {
        let fd = try makeListeningSocket(endpoint, mode: mode)
        let channel = try ServerBootstrap(group: group)
            .childChannelInitializer { [shared] channel in
                Self.configure(channel, shared: shared)
            }
            .withBoundSocket(fd)
            .wait()
        channels.withLockedValue { $0.append(channel) }
        if let path = endpoint.path { paths.withLockedValue { $0.append(path) } }
        logger.notice("control API on \(endpoint)")
    }

    /// Serves a connection accepted elsewhere, `buffered` being what was read
    /// from it already; `forwarderOnly` for the gateway's port 80 inside the
    /// virtual network, which serves only /services/forwarder/ (as gvproxy).
    public func adopt(descriptor: Int32, buffered: [UInt8], forwarderOnly: Bool = false) {
        let future = ClientBootstrap(group: group)
            .channelInitializer { [shared] channel in
                Self.configure(channel, shared: shared, forwarderOnly: forwarderOnly)
            }
            .withConnectedSocket(descriptor)
        future.whenSuccess { channel in
            var buffer = channel.allocator.buffer(capacity: buffered.count)
            buffer.writeBytes(buffered)
            channel.pipeline.fireChannelRead(buffer)
        }
        future.whenFailure { [logger] error in
            logger.warning("control API connection: \(error)")
            close(descriptor)
        }
    }

    /// Closes the listeners, removes their socket files and stops the thread.
    public func shutDown() {
        for channel in channels.withLockedValue({ $0 }) { try? channel.close().wait() }
        for path in paths.withLockedValue({ $0 }) { unlink(path) }
        try? group.syncShutdownGracefully()
    }

    private static func configure(_ channel: Channel, shared: SharedNetwork, forwarderOnly: Bool = false) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(APIHandler(shared: shared, forwarderOnly: forwarderOnly))
        }
    }
}

/// One HTTP exchange per request: collect the body, route it, answer.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumBody = 1 << 20
    private let shared: SharedNetwork
    private let forwarderOnly: Bool
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(shared: SharedNetwork, forwarderOnly: Bool) {
        self.shared = shared
        self.forwarderOnly = forwarderOnly
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
            body.removeAll()
            tooLarge = false
        case .body(var chunk):
            if body.count + chunk.readableBytes > Self.maximumBody {
                tooLarge = true
            } else if let bytes = chunk.readBytes(length: chunk.readableBytes) {
                body += bytes
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let route = ControlAPI.route(head.uri)
            if tooLarge {
                respond(context: context, request: head,
                        with: ControlAPI.Response(status: 413, body: Array("request body too large\n".utf8)))
            } else if forwarderOnly, !ControlAPI.isForwarderRoute(route) {
                respond(context: context, request: head,
                        with: ControlAPI.error(404, "only /services/forwarder/ is served inside the virtual network"))
            } else if ControlAPI.isForwarderRoute(route) || ControlAPI.isCheckRoute(route) {
                respondOffLoop(context: context, request: head, body: body)
            } else {
                let method = head.method.rawValue
                let response: ControlAPI.Response
                if ControlAPI.changesNetwork(route) {
                    response = shared.withLock { ControlAPI.respond(method: method, path: head.uri, body: body, network: $0) }
                } else {
                    response = ControlAPI.respond(method: method, path: head.uri, snapshot: shared.snapshot())
                }
                respond(context: context, request: head, with: response)
            }
        }
    }

    /// Answers a route that waits on the proxy loop from another thread, so
    /// the event loop keeps serving meanwhile.
    private func respondOffLoop(context: ChannelHandlerContext, request head: HTTPRequestHead, body: [UInt8]) {
        let shared = self.shared
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        DispatchQueue.global().async {
            let method = head.method.rawValue
            let response: ControlAPI.Response
            if ControlAPI.isCheckRoute(ControlAPI.route(head.uri)) {
                if let probing = shared.probing {
                    response = ControlAPI.respondCheck(method: method, path: head.uri, body: body, probing: probing)
                } else {
                    response = ControlAPI.error(503, "checks are not available yet")
                }
            } else if let forwarding = shared.forwarding {
                response = ControlAPI.respondForwarder(method: method, path: head.uri, body: body, forwarding: forwarding)
            } else {
                response = ControlAPI.error(503, "port forwards are not available yet")
            }
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.respond(context: context, request: head, with: response)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, request: HTTPRequestHead, with response: ControlAPI.Response) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.status == 200 ? "application/json" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(response.body.count))
        let keepAlive = request.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let head = HTTPResponseHead(version: request.version, status: HTTPResponseStatus(statusCode: response.status),
                                    headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
