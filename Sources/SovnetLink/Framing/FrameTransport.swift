// Opening framed connections from endpoint URLs, on both sides: `connect`
// for the side that dials (gvforwarder's role, or a test's QEMU stand-in) and
// `FrameListener` for the side that serves (gvproxy's `-listen*` flags).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif hasFeature(Embedded)
import CSovnetShim
#endif
import Logging

/// Dials framed connections.
public enum FrameTransport {
    /// The default largest frame: a 1500-byte MTU, an Ethernet header and one VLAN tag.
    public static let defaultMaximumFrameLength = 1518

    /// Connects to `endpoint` and speaks `framing`. For `vm`, the request head
    /// (path from the URL, `/connect` by default) is written first. With
    /// `offload`, a `vm` socket first asks for virtio-net headers
    /// (`OffloadLink`) and, if the server does not grant them, connects again
    /// plainly; the connection's `virtioHeaders` says which it got.
    public static func connect(to endpoint: Endpoint, framing: Framing,
                               maximumFrameLength: Int = defaultMaximumFrameLength, offload: Bool = false,
                               logger: Logger = Logger(label: "sovnet.link")) throws(LinkError) -> FrameEndpoint {
        try checkCompatible(endpoint, framing)
        if offload, framing == .vm, endpoint.isStreamSocket, let offloading = try connectOffloading(to: endpoint, logger: logger) {
            return offloading
        }
        if endpoint == .stdio {
            return StreamFrameConnection(framing: framing, readDescriptor: 0, writeDescriptor: 1,
                                         maximumFrameLength: maximumFrameLength, logger: logger)
        }
        if case .serial(let path) = endpoint {
            let fd = try SerialDevice.open(path)
            let connection = StreamFrameConnection(framing: framing, readDescriptor: fd, writeDescriptor: fd,
                                                   maximumFrameLength: maximumFrameLength,
                                                   serial: .guest(requestPath: "/connect"), logger: logger)
            try connection.beginSerialLink()
            return connection
        }
        let fd = try Sockets.connect(to: endpoint)
        switch framing {
        case .bess, .vfkit:
            let connection = PacketFrameConnection(framing: framing, descriptor: fd,
                                                   maximumFrameLength: maximumFrameLength, logger: logger)
            if framing == .vfkit { try connection.sendGreeting() }
            return connection
        case .vm, .qemu, .stdio:
            let connection = StreamFrameConnection(framing: framing, readDescriptor: fd, writeDescriptor: fd,
                                                   maximumFrameLength: maximumFrameLength, logger: logger)
            if framing == .vm {
                var path = "/connect"
                if case .vsock(_, _, let urlPath?) = endpoint { path = urlPath }
                try connection.sendRaw(Framing.vmRequestHead(path: path))
            }
            return connection
        }
    }

    /// Asks `endpoint` for offloads; the connection if they were granted, nil
    /// (the socket closed) otherwise.
    private static func connectOffloading(to endpoint: Endpoint, logger: Logger) throws(LinkError) -> StreamFrameConnection? {
        let fd = try Sockets.connect(to: endpoint)
        let connection = StreamFrameConnection(framing: .vm, readDescriptor: fd, writeDescriptor: fd,
                                               maximumFrameLength: OffloadLink.maximumFrameLength, logger: logger)
        do {
            try connection.sendRaw(Framing.vmRequestHead(path: OffloadLink.requestPath))
            if try connection.awaitOffloadAnswer(timeout: OffloadLink.replyTimeout) { return connection }
        } catch {
            logger.debug("offload request to \(endpoint): \(error)")
        }
        connection.close()
        return nil
    }

    /// Packet framings need packet sockets, and stream framings stream ones.
    static func checkCompatible(_ endpoint: Endpoint, _ framing: Framing) throws(LinkError) {
        let fits = switch endpoint {
        case .unixPacket: framing == .bess
        case .unixDatagram: framing == .vfkit
        case .unix, .vsock, .tcp, .stdio: framing.lengthPrefix != nil
        case .serial: framing == .vm
        }
        guard fits else {
            throw LinkError.unsupported("the \(framing) framing cannot run over \(endpoint)")
        }
    }
}

/// Serves framed connections on an endpoint.
///
/// Stream and seqpacket endpoints accept any number of connections. A
/// datagram (vfkit) or stdio endpoint has one peer: `accept` returns its
/// connection once. The socket path is created with `socketMode` and removed
/// by `close`. A serial listener's connections come from a hypervisor that
/// carries a guest's serial line (`SerialLink.swift`): `vm` frames with
/// markers, no request head first.
public final class FrameListener {
    public let endpoint: Endpoint
    public let framing: Framing
    public let maximumFrameLength: Int
    /// Whether connections are the host end of a serial line.
    public let serial: Bool
    /// Whether `vm` connections that ask for offloads get them.
    public let acceptsOffload: Bool
    /// The listening descriptor (for polling); -1 for stdio.
    public let descriptor: Int32
    private let logger: Logger
    private var handedOutSinglePeer = false
    private var closed = false

    public init(endpoint: Endpoint, framing: Framing, maximumFrameLength: Int = FrameTransport.defaultMaximumFrameLength,
                socketMode: mode_t = 0o600, serial: Bool = false, acceptsOffload: Bool = false,
                logger: Logger = Logger(label: "sovnet.link")) throws(LinkError) {
        self.endpoint = endpoint
        self.framing = framing
        self.maximumFrameLength = maximumFrameLength
        self.serial = serial
        self.acceptsOffload = acceptsOffload && framing == .vm && !serial
        self.logger = logger
        try FrameTransport.checkCompatible(endpoint, framing)
        if serial {
            guard case .unix = endpoint, framing == .vm else {
                throw LinkError.unsupported("a serial line is served on a unix:// socket with the vm framing")
            }
        }
        if case .serial = endpoint { throw LinkError.unsupported("\(endpoint) is a guest's device; the host serves a unix:// socket") }
        descriptor = endpoint == .stdio ? -1 : try Sockets.listen(on: endpoint, mode: socketMode)
    }

    deinit {
        close()
    }

    /// Waits for the next peer and returns its connection.
    public func accept() throws(LinkError) -> FrameEndpoint {
        switch (endpoint, framing) {
        case (.stdio, _), (.unixDatagram, _):
            guard !handedOutSinglePeer else {
                throw LinkError.unsupported("\(endpoint) serves a single peer, already connected")
            }
            handedOutSinglePeer = true
            if endpoint == .stdio {
                return StreamFrameConnection(framing: framing, readDescriptor: 0, writeDescriptor: 1,
                                             maximumFrameLength: maximumFrameLength, logger: logger)
            }
            return PacketFrameConnection(framing: framing, descriptor: dup(descriptor),
                                         maximumFrameLength: maximumFrameLength, learnsPeer: true, logger: logger)
        case (_, .bess), (_, .vfkit):
            return PacketFrameConnection(framing: framing, descriptor: try Sockets.accept(descriptor),
                                         maximumFrameLength: maximumFrameLength, logger: logger)
        case _ where serial:
            let fd = try Sockets.accept(descriptor)
            return StreamFrameConnection(framing: framing, readDescriptor: fd, writeDescriptor: fd,
                                         maximumFrameLength: maximumFrameLength,
                                         serial: .host(session: UInt64.random(in: 1...UInt64.max)), logger: logger)
        default:
            var expectedPath: String?
            if framing == .vm {
                expectedPath = "/connect"
                if case .vsock(_, _, let path?) = endpoint { expectedPath = path }
            }
            let fd = try Sockets.accept(descriptor)
            return StreamFrameConnection(framing: framing, readDescriptor: fd, writeDescriptor: fd,
                                         maximumFrameLength: maximumFrameLength, expectedRequestPath: expectedPath,
                                         acceptsOffload: acceptsOffload,
                                         logger: logger)
        }
    }

    /// Stops listening and removes the socket path.
    public func close() {
        guard !closed else { return }
        closed = true
        if descriptor >= 0 { systemClose(descriptor) }
        if let path = endpoint.path { unlink(path) }
    }
}
