// DNS over TCP on the gateway (RFC 7766), for guests whose answers do not
// fit UDP (truncated answers are retried over TCP) or that prefer TCP. The
// NAT hands each guest connection to port 53 over as one side of a
// socketpair; this server, on the control API's SwiftNIO thread, reads
// length-prefixed queries from it. Each is decided by the gateway's resolver
// (`DNSResolver.decide`): local names are answered at once; the rest are
// asked of the upstream resolvers over TCP, one at a time in order, each
// given two seconds, and the answer is relayed unchanged. When none answers,
// the guest gets SERVFAIL. Queries may be pipelined; answers go back as they
// come, which RFC 7766 §6.2.1.1 allows.
//
// Each forwarded query holds one upstream connection while it waits, so
// their number is bounded: `maximumUpstreamQueries` in all and
// `maximumUpstreamQueriesPerPort` for the connections of one switch port
// (one guest); a query beyond either is answered SERVFAIL at once.
import Foundation
import Logging
import NIOCore
import NIOPosix
import SovnetCore
import SovnetWire

final class GatewayDNSOverTCP: @unchecked Sendable {
    private let group: EventLoopGroup
    private let shared: LoopNetwork
    private let upstreamsLock = NSLock()
    private var upstreamList: [ResolverAddress]
    private let logger: Logger
    static let upstreamTimeout = TimeAmount.seconds(2)
    /// Queries waiting on upstream connections, in all and per guest port.
    static let maximumUpstreamQueries = 128
    static let maximumUpstreamQueriesPerPort = 16
    /// Upstream queries in flight, touched only on the server's event loop.
    private var upstreamQueries = 0
    private var upstreamQueriesByPort: [PortID: Int] = [:]

    init(group: EventLoopGroup, shared: LoopNetwork, upstreams: [ResolverAddress], logger: Logger) {
        self.group = group
        self.shared = shared
        upstreamList = upstreams
        self.logger = logger
    }

    /// The upstream resolvers, in order; set by the proxy's loop when the host's change.
    var upstreams: [ResolverAddress] {
        get { upstreamsLock.withLock { upstreamList } }
        set { upstreamsLock.withLock { upstreamList = newValue } }
    }

    /// Serves the connection of the guest on `port` carried by `descriptor`.
    func adopt(_ descriptor: Int32, port: PortID) {
        ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedDNS()))
                    try channel.pipeline.syncOperations.addHandler(QueryHandler(server: self, port: port))
                }
            }
            .withConnectedSocket(descriptor)
            .whenFailure { [logger] error in logger.warning("DNS over TCP: \(error)") }
    }

    /// The answer to one query: local, or from the first upstream that answers, or SERVFAIL.
    fileprivate func answer(_ query: [UInt8], from port: PortID, on loop: EventLoop) -> EventLoopFuture<[UInt8]?> {
        shared.run(on: loop) { network in query.withUnsafeBytes { network.decideDNS($0) } }.flatMap { [self] decision in
            switch decision {
            case nil, .drop:
                return loop.makeSucceededFuture(nil)
            case .answer(let reply):
                return loop.makeSucceededFuture(reply)
            case .forward:
                return forward(query, from: port, on: loop)
            }
        }
    }

    /// Asks the upstream resolvers, within the bounds; SERVFAIL when none answers.
    private func forward(_ query: [UInt8], from port: PortID, on loop: EventLoop) -> EventLoopFuture<[UInt8]?> {
        let servfail: @Sendable (String) -> EventLoopFuture<[UInt8]?> = { [shared] counter in
            shared.run(on: loop) { network in query.withUnsafeBytes { network.dnsServerFailure(for: $0, counter: counter) } }
                .map { $0 ?? nil }
        }
        guard upstreamQueries < Self.maximumUpstreamQueries,
              upstreamQueriesByPort[port, default: 0] < Self.maximumUpstreamQueriesPerPort else {
            return servfail("servfail-limit")
        }
        upstreamQueries += 1
        upstreamQueriesByPort[port, default: 0] += 1
        return ask(query, upstream: 0, on: loop).map { Optional($0) }.flatMapError { _ in
            servfail("servfail")
        }.always { [self] _ in
            upstreamQueries -= 1
            let left = upstreamQueriesByPort[port, default: 1] - 1
            upstreamQueriesByPort[port] = left > 0 ? left : nil
        }
    }

    /// Asks upstream number `index` over TCP, then the next ones on failure.
    private func ask(_ query: [UInt8], upstream index: Int, on loop: EventLoop) -> EventLoopFuture<[UInt8]> {
        let upstreams = self.upstreams
        guard upstreams.indices.contains(index) else { return loop.makeFailedFuture(NoUpstreamAnswered()) }
        let address = upstreams[index]
        let promise = loop.makePromise(of: [UInt8].self)
        ClientBootstrap(group: loop)
            .connectTimeout(Self.upstreamTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedDNS()))
                    try channel.pipeline.syncOperations.addHandler(UpstreamAnswer(promise: promise))
                }
            }
            .connect(host: address.host, port: Int(address.port))
            .whenComplete { result in
                switch result {
                case .failure(let error):
                    promise.fail(error)
                case .success(let channel):
                    var framed = channel.allocator.buffer(capacity: query.count + 2)
                    framed.writeInteger(UInt16(query.count))
                    framed.writeBytes(query)
                    channel.writeAndFlush(framed, promise: nil)
                    channel.eventLoop.scheduleTask(in: Self.upstreamTimeout) {
                        promise.fail(ChannelError.connectTimeout(Self.upstreamTimeout))
                        channel.close(promise: nil)
                    }
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                }
            }
        return promise.futureResult.flatMapError { [logger] error in
            logger.debug("DNS over TCP to \(address): \(error)")
            return self.ask(query, upstream: index + 1, on: loop)
        }
    }
}

/// Every upstream resolver failed or stayed silent.
private struct NoUpstreamAnswered: Error {}

/// Splits a stream into DNS messages, each after a two-byte length (RFC 1035 §4.2.2).
private struct LengthPrefixedDNS: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// Answers each query of a guest connection.
private final class QueryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let server: GatewayDNSOverTCP
    private let port: PortID

    init(server: GatewayDNSOverTCP, port: PortID) {
        self.server = server
        self.port = port
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let query = Array(unwrapInboundIn(data).readableBytesView)
        let channel = context.channel
        server.answer(query, from: port, on: context.eventLoop).whenSuccess { reply in
            guard let reply else {
                channel.close(promise: nil)
                return
            }
            var framed = channel.allocator.buffer(capacity: reply.count + 2)
            framed.writeInteger(UInt16(reply.count))
            framed.writeBytes(reply)
            channel.writeAndFlush(framed, promise: nil)
        }
    }
}

/// Takes the first answer an upstream resolver sends.
private final class UpstreamAnswer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<[UInt8]>

    init(promise: EventLoopPromise<[UInt8]>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        promise.succeed(Array(unwrapInboundIn(data).readableBytesView))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }
}
