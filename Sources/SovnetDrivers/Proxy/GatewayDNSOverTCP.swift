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
import Logging
import NIOCore
import NIOPosix
import SovnetCore
import SovnetWire

final class GatewayDNSOverTCP: @unchecked Sendable {
    private let group: EventLoopGroup
    private let shared: SharedNetwork
    private let upstreams: [(IPv4Address, UInt16)]
    private let logger: Logger
    static let upstreamTimeout = TimeAmount.seconds(2)

    init(group: EventLoopGroup, shared: SharedNetwork, upstreams: [(IPv4Address, UInt16)], logger: Logger) {
        self.group = group
        self.shared = shared
        self.upstreams = upstreams
        self.logger = logger
    }

    /// Serves the guest connection carried by `descriptor`.
    func adopt(_ descriptor: Int32) {
        ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedDNS()))
                    try channel.pipeline.syncOperations.addHandler(QueryHandler(server: self))
                }
            }
            .withConnectedSocket(descriptor)
            .whenFailure { [logger] error in logger.warning("DNS over TCP: \(error)") }
    }

    /// The answer to one query: local, or from the first upstream that answers, or SERVFAIL.
    fileprivate func answer(_ query: [UInt8], on loop: EventLoop) -> EventLoopFuture<[UInt8]?> {
        let decision = shared.withLock { network in query.withUnsafeBytes { network.decideDNS($0) } }
        switch decision {
        case .drop:
            return loop.makeSucceededFuture(nil)
        case .answer(let reply):
            return loop.makeSucceededFuture(reply)
        case .forward:
            return ask(query, upstream: 0, on: loop).map { Optional($0) }.flatMapError { [shared] _ in
                loop.makeSucceededFuture(shared.withLock { network in query.withUnsafeBytes { network.dnsServerFailure(for: $0) } })
            }
        }
    }

    /// Asks upstream number `index` over TCP, then the next ones on failure.
    private func ask(_ query: [UInt8], upstream index: Int, on loop: EventLoop) -> EventLoopFuture<[UInt8]> {
        guard upstreams.indices.contains(index) else { return loop.makeFailedFuture(NoUpstreamAnswered()) }
        let (address, port) = upstreams[index]
        let promise = loop.makePromise(of: [UInt8].self)
        ClientBootstrap(group: loop)
            .connectTimeout(Self.upstreamTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LengthPrefixedDNS()))
                    try channel.pipeline.syncOperations.addHandler(UpstreamAnswer(promise: promise))
                }
            }
            .connect(host: address.description, port: Int(port))
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
            logger.debug("DNS over TCP to \(address):\(port): \(error)")
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

    init(server: GatewayDNSOverTCP) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let query = Array(unwrapInboundIn(data).readableBytesView)
        let channel = context.channel
        server.answer(query, on: context.eventLoop).whenSuccess { reply in
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
