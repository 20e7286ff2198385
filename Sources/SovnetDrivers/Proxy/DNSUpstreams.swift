// The resolvers the gateway's DNS forwards to, as the proxy loop uses them:
// one connected UDP socket per resolver in the loop's epoll (a resolver that
// cannot be reached yet is tried again with its next query), and, when the
// proxy follows the host's resolv.conf, its nameservers and search domains
// read again once a second (`ResolvConfWatcher`). Resolvers given on the
// command line stay as they are; the host's search domains are still followed.
import CSovnetShim
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

final class DNSUpstreams {
    /// One resolver's socket.
    private enum Socket {
        case connected(Int32)
        /// Not connected yet (no route to it); tried again with the next query.
        case unconnected
    }

    /// What a changed resolv.conf brought.
    struct Change {
        /// The resolvers now, or nil when they come from the command line.
        var resolvers: [ResolverAddress]?
        /// The search domains guests get with their next lease, or nil when not followed.
        var searchDomains: [DNSName]?
    }

    /// The resolvers, in order.
    private(set) var addresses: [ResolverAddress]
    private var sockets: [Socket] = []
    private let fixed: Bool
    private let followsSearchDomains: Bool
    private var watcher: ResolvConfWatcher?
    /// When resolv.conf is read next; nil when it is not followed.
    private(set) var nextCheck: ContinuousClock.Instant?
    private static let checkInterval: Duration = .seconds(1)
    private let epoll: Epoll
    private let logger: Logger
    private var buffer = [UInt8](repeating: 0, count: 65_535)

    /// - Parameters:
    ///   - resolvers: the command line's resolvers; empty to take the host's.
    ///   - resolvConf: the host's resolv.conf to follow, if any.
    init(resolvers: [ResolverAddress], resolvConf: String?, followsSearchDomains: Bool, epoll: Epoll, logger: Logger) {
        fixed = !resolvers.isEmpty
        self.followsSearchDomains = followsSearchDomains
        watcher = resolvConf.map { ResolvConfWatcher(path: $0) }
        addresses = fixed ? resolvers : watcher?.current.nameservers ?? []
        nextCheck = watcher == nil ? nil : .now
        self.epoll = epoll
        self.logger = logger
    }

    /// The host's search domains at start, when they are followed.
    var initialSearchDomains: [DNSName]? {
        followsSearchDomains ? watcher?.current.searchDomains : nil
    }

    /// Connects every resolver's socket and says what is followed.
    func start() {
        sockets = Array(repeating: .unconnected, count: addresses.count)
        for (index, address) in addresses.enumerated() {
            connect(index, quietly: false)
            logger.info("forwarding DNS to \(address)")
        }
        if let watcher {
            let what = [fixed ? nil : "DNS resolvers", followsSearchDomains ? "search domains" : nil]
            logger.info("following \(watcher.path) for \(what.compactMap { $0 }.joined(separator: " and "))")
        }
    }

    /// Connects resolver `index`'s socket; a failure is logged and its
    /// queries go unanswered (the resolver answers SERVFAIL) until it works.
    private func connect(_ index: Int, quietly: Bool) {
        let address = addresses[index]
        do {
            let fd = try address.connectedUDPSocket().get()
            do {
                try epoll.add(fd, [.readable], token: LoopToken.upstream(index).rawValue)
            } catch {
                close(fd)
                throw error
            }
            sockets[index] = .connected(fd)
        } catch {
            let message: Logger.Message = "DNS upstream \(address): connect: \(error); trying again with the next query"
            if quietly { logger.debug(message) } else { logger.warning(message) }
        }
    }

    /// Sends a query to resolver `index`.
    func send(_ query: [UInt8], to index: Int) {
        guard sockets.indices.contains(index) else { return }
        if case .unconnected = sockets[index] { connect(index, quietly: true) }
        guard case .connected(let fd) = sockets[index] else { return }
        let sent = query.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 { logger.debug("DNS upstream \(index): \(String(cString: strerror(errno)))") }
    }

    /// Calls `body` with each answer waiting on resolver `index`'s socket.
    func receive(from index: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        guard sockets.indices.contains(index), case .connected(let fd) = sockets[index] else { return }
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { return }
            buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
    }

    /// Reads resolv.conf when it is due; what changed, if anything. Changed
    /// resolvers replace the old ones at once: their sockets are closed and
    /// queries waiting on them go to the new ones when they time out.
    func check(now: ContinuousClock.Instant) -> Change? {
        guard let due = nextCheck, now >= due else { return nil }
        nextCheck = now + Self.checkInterval
        guard let changed = watcher?.poll(), let path = watcher?.path else { return nil }
        if !fixed {
            closeAll()
            addresses = changed.nameservers
            sockets = Array(repeating: .unconnected, count: addresses.count)
            for index in addresses.indices { connect(index, quietly: false) }
        }
        let change = Change(resolvers: fixed ? nil : addresses, searchDomains: followsSearchDomains ? changed.searchDomains : nil)
        let names = addresses.isEmpty ? "none" : addresses.map(\.description).joined(separator: ", ")
        let search = change.searchDomains.map {
            " (search \($0.isEmpty ? "none" : $0.map { String($0.description.dropLast()) }.joined(separator: " ")))"
        } ?? ""
        logger.notice("\(path) changed: DNS resolvers \(fixed ? "(from --dns-upstream) " : "now ")\(names)\(search)")
        return change
    }

    func closeAll() {
        for case .connected(let fd) in sockets {
            epoll.remove(fd)
            close(fd)
        }
        sockets = sockets.map { _ in .unconnected }
    }
}
