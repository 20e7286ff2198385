// The host listeners of the port forwards, owned by the proxy loop's thread
// (the control API reaches it through the loop's mailbox). Each listener is
// in the loop's epoll under a `.forward(id)` token, and remembers who made
// it: a guest's forwards are listed for it and removed by it alone, and
// listen without SO_REUSEADDR so that they never share a host service's port.
import Glibc
import SovnetLink
import SovnetWire

final class ForwardTable {
    struct Entry {
        let forward: PortForward
        let descriptor: Int32
        let owner: ForwardRequester
        /// Made by the proxy for its forwards over SSH: listed, but not removed through the API.
        let pinned: Bool
    }

    private(set) var entries: [UInt64: Entry] = [:]
    private var nextID: UInt64 = 1
    private let epoll: Epoll
    private let socketMode: mode_t

    init(epoll: Epoll, socketMode: mode_t) {
        self.epoll = epoll
        self.socketMode = socketMode
    }

    var forwards: [PortForward] {
        entries.sorted { $0.key < $1.key }.map(\.value.forward)
    }

    /// The forwards `owner` made.
    func count(madeBy owner: ForwardRequester) -> Int {
        entries.values.filter { $0.owner == owner }.count
    }

    /// Starts listening for `forward`, made by `owner`; the forward as
    /// made: a local port 0 becomes the port the system chose.
    @discardableResult
    func expose(_ requested: PortForward, owner: ForwardRequester = .host, pinned: Bool = false) throws(PortForwardError) -> PortForward {
        guard !entries.values.contains(where: { $0.forward.kind == requested.kind && $0.forward.local == requested.local }) else {
            throw PortForwardError("\(requested.kind) \(requested.local) is already forwarded")
        }
        let fd = try listen(requested, sharingPorts: owner == .host)
        var forward = requested
        if let (address, port) = requested.localAddress, port == 0, let (_, chosen) = InetAddress.local(fd) {
            forward.local = address.with(port: chosen)
        }
        let id = nextID
        nextID += 1
        do {
            try epoll.add(fd, [.readable], token: LoopToken.forward(id).rawValue)
        } catch {
            close(fd)
            throw PortForwardError("\(forward.local): \(error)")
        }
        entries[id] = Entry(forward: forward, descriptor: fd, owner: owner, pinned: pinned)
        return forward
    }

    /// Stops a forward, if `requester` may; returns the number it had.
    @discardableResult
    func unexpose(kind: PortForward.Kind, local: String, by requester: ForwardRequester = .host,
                  unpinning: Bool = false) throws(PortForwardError) -> UInt64 {
        guard let (id, entry) = entries.first(where: { $0.value.forward.kind == kind && $0.value.forward.local == local }) else {
            throw PortForwardError("\(kind) \(local) is not forwarded")
        }
        guard !entry.pinned || unpinning else {
            throw PortForwardError("\(kind) \(local) carries the forwards over SSH; it goes when the proxy stops")
        }
        guard requester == .host || entry.owner == requester else {
            throw PortForwardError("\(kind) \(local) was not made by \(requester)")
        }
        entries[id] = nil
        epoll.remove(entry.descriptor)
        close(entry.descriptor)
        if kind == .unix { unlink(local) }
        return id
    }

    func closeAll() {
        for entry in entries.values {
            _ = try? unexpose(kind: entry.forward.kind, local: entry.forward.local, unpinning: true)
        }
    }

    /// A listening socket for `forward`; with `sharingPorts`, SO_REUSEADDR
    /// as the host's forwards have always had it.
    private func listen(_ forward: PortForward, sharingPorts: Bool) throws(PortForwardError) -> Int32 {
        if forward.kind == .unix {
            do {
                let fd = try makeListeningSocket(.unix(path: forward.local), mode: socketMode)
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                return fd
            } catch {
                throw PortForwardError("\(forward.local): \(error)")
            }
        }
        guard let (address, port) = forward.localAddress else { throw PortForwardError("bad local '\(forward.local)'") }
        let fd: Int32
        switch InetAddress.socket(for: address, forward.kind == .tcp ? SocketType.stream : SocketType.datagram) {
        case .success(let descriptor): fd = descriptor
        case .failure(let error): throw PortForwardError("socket for \(forward.local): \(error)")
        }
        if sharingPorts { _ = InetAddress.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
        // [::]:PORT is IPv6's every address only; 0.0.0.0:PORT may be forwarded beside it.
        if address.isIPv6 { _ = InetAddress.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        let bound = InetAddress.bind(fd, address, port)
        guard bound == 0, forward.kind == .udp || Glibc.listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(bound == 0 ? errno : bound))
            close(fd)
            throw PortForwardError("cannot listen on \(forward.local): \(reason)")
        }
        return fd
    }
}
