// The control API's HTTP server, on SwiftNIO's HTTP/1.1 support. It runs on
// its own event loop thread; the network it reads and changes is the proxy
// loop's, reached through the loop's mailbox (`LoopNetwork`).
//
// It serves `--services` endpoints of its own, and connections that arrive
// on `-listen` sockets with a request other than `POST /connect`: the frame
// loop hands those over with the bytes it has already read, which are fed to
// the HTTP decoder first. Guests reach its forwarder routes at the
// gateway's port 80, under the `GuestForwardPolicy`.
//
// Connections are bounded, the host's and the guests' apart so that guests
// cannot crowd the host out: `maximumConnections` from the host,
// `maximumGuestConnections` from all guests and `maximumConnectionsPerGuest`
// from one guest address; one past its bound is closed at once. Each request must arrive whole within
// `requestTimeout` of the connection or of the previous answer, so idle
// and slow (slowloris) connections are closed.
import Dispatch
import Foundation
import Glibc
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import SovnetCore
import SovnetLink
import SovnetWire

/// Serves the control API.
public final class ControlServer: @unchecked Sendable {
    /// The API's thread, which the gateway's DNS over TCP shares.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let shared: LoopNetwork
    private let logger: Logger
    private let channels = NIOLockedValueBox<[Channel]>([])
    private let paths = NIOLockedValueBox<[String]>([])
    /// Open API connections: the host's, the guests' and each guest address's.
    private let open = NIOLockedValueBox<(host: Int, guests: Int, byGuest: [IPAddress: Int])>((0, 0, [:]))
    static let maximumConnections = 256
    static let maximumGuestConnections = 128
    static let maximumConnectionsPerGuest = 16
    static let requestTimeout = TimeAmount.seconds(10)

    public init(shared: LoopNetwork, logger: Logger) {
        self.shared = shared
        self.logger = logger
    }

    /// Listens on `endpoint` (unix or TCP), with `mode` for a unix socket.
    public func listen(on endpoint: Endpoint, mode: mode_t) throws {
        let fd = try makeListeningSocket(endpoint, mode: mode)
        let channel = try ServerBootstrap(group: group)
            .childChannelInitializer { [self] channel in
                guard admit(.host) else { return channel.close() }
                return configure(channel, requester: .host)
            }
            .withBoundSocket(fd)
            .wait()
        channels.withLockedValue { $0.append(channel) }
        if let path = endpoint.path { paths.withLockedValue { $0.append(path) } }
        logger.notice("control API on \(endpoint)")
    }

    /// Serves a connection accepted elsewhere, `buffered` being what was read
    /// from it already; from a guest (the gateway's port 80 inside the
    /// virtual network) only /services/forwarder/ is served, as by gvproxy.
    public func adopt(descriptor: Int32, buffered: [UInt8], requester: ForwardRequester = .host) {
        guard admit(requester) else {
            logger.debug("control API: \(requester)'s connection closed, too many are open")
            close(descriptor)
            return
        }
        let future = ClientBootstrap(group: group)
            .channelInitializer { [self] channel in
                configure(channel, requester: requester)
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

    /// Counts a new connection from `requester`; false when its bound is reached.
    private func admit(_ requester: ForwardRequester) -> Bool {
        open.withLockedValue { open -> Bool in
            guard case .guest(let guest) = requester else {
                guard open.host < Self.maximumConnections else { return false }
                open.host += 1
                return true
            }
            guard open.guests < Self.maximumGuestConnections,
                  open.byGuest[guest, default: 0] < Self.maximumConnectionsPerGuest else { return false }
            open.guests += 1
            open.byGuest[guest, default: 0] += 1
            return true
        }
    }

    /// Uncounts a connection that closed.
    private func release(_ requester: ForwardRequester) {
        open.withLockedValue { open in
            guard case .guest(let guest) = requester else { return open.host -= 1 }
            open.guests -= 1
            let left = open.byGuest[guest, default: 1] - 1
            open.byGuest[guest] = left > 0 ? left : nil
        }
    }

    /// Sets up an admitted API connection, uncounted when it closes.
    private func configure(_ channel: Channel, requester: ForwardRequester) -> EventLoopFuture<Void> {
        channel.closeFuture.whenComplete { [self] _ in release(requester) }
        return channel.eventLoop.makeCompletedFuture { [shared] in
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(APIHandler(shared: shared, requester: requester))
        }
    }
}

/// One HTTP exchange per request: collect the body, route it, answer.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let maximumBody = 1 << 20
    private let shared: LoopNetwork
    private let requester: ForwardRequester
    private var forwarderOnly: Bool { requester != .host }
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false
    /// Closes the connection when no whole request came in time.
    private var deadline: Scheduled<Void>?

    init(shared: LoopNetwork, requester: ForwardRequester) {
        self.shared = shared
        self.requester = requester
    }

    func handlerAdded(context: ChannelHandlerContext) {
        awaitRequest(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    /// Gives the next request `ControlServer.requestTimeout` to arrive whole.
    private func awaitRequest(context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: ControlServer.requestTimeout) { channel.close(promise: nil) }
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
            deadline?.cancel()
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
                let uri = head.uri
                let body = self.body
                let response: EventLoopFuture<ControlAPI.Response>
                if ControlAPI.changesNetwork(route) {
                    response = shared.run(on: context.eventLoop) {
                        ControlAPI.respond(method: method, path: uri, body: body, network: $0)
                    }.map { $0 ?? ControlAPI.error(503, "the proxy is busy or shutting down; try again") }
                } else {
                    response = shared.snapshot(on: context.eventLoop).map {
                        ControlAPI.respond(method: method, path: uri, snapshot: $0)
                    }
                }
                let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                response.whenSuccess { response in
                    let (handler, context) = bound.value
                    handler.respond(context: context, request: head, with: response)
                }
            }
        }
    }

    /// Answers a route that waits on the proxy loop from another thread, so
    /// the event loop keeps serving meanwhile.
    private func respondOffLoop(context: ChannelHandlerContext, request head: HTTPRequestHead, body: [UInt8]) {
        let shared = self.shared
        let requester = self.requester
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
                response = ControlAPI.respondForwarder(method: method, path: head.uri, body: body, forwarding: forwarding,
                                                       requester: requester)
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
        if keepAlive {
            awaitRequest(context: context)
        } else {
            let channel = context.channel
            done.futureResult.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
