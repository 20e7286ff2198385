// Interface configuration through rtnetlink (netlink(7), rtnetlink(7)): the
// calls `ip link set up mtu`, `ip addr add/del` and `ip route replace/del
// default` make, without executing `ip`. Each request asks for an ACK and
// waits for it, so an error comes back as the errno the kernel chose. One
// dump reads routes back: the `local` ones (`ip route show table local type
// local`), for the proxy's list of its host's own addresses.
import CSovnetShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SovnetLink
import SovnetWire

/// A NETLINK_ROUTE socket for configuring interfaces in the caller's network namespace.
public final class RouteNetlink {
    private let fd: Int32
    private var sequence: UInt32 = 1

    public init() throws(LinkError) {
        fd = socket(AF_NETLINK, SocketType.raw | SocketType.closeOnExec, 0)
        guard fd >= 0 else { throw LinkError.system(operation: "netlink socket", errno: ErrorNumber(rawValue: errno)) }
    }

    deinit {
        close(fd)
    }

    /// The index of interface `name`, or nil if there is none.
    public static func interfaceIndex(_ name: String) -> Int32? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : Int32(index)
    }

    /// Brings the link up, and sets its MTU when given.
    public func setLinkUp(index: Int32, mtu: Int?) throws(LinkError) {
        var body = Message(type: Self.newLink, flags: Self.request | Self.ack, sequence: nextSequence())
        body.appendInterfaceInfo(index: index, flags: UInt32(IFF_UP), change: UInt32(IFF_UP))
        if let mtu { body.appendAttribute(type: Self.linkMTU, u32: UInt32(mtu)) }
        try transact(body, "set link \(index) up")
    }

    /// Caps the packets the interface's segmentation offload takes at
    /// `bytes` (`ip link set … gso_max_size`), so a superframe and its
    /// headers fit a 16-bit frame length.
    public func setSegmentationLimit(index: Int32, bytes: Int) throws(LinkError) {
        var body = Message(type: Self.newLink, flags: Self.request | Self.ack, sequence: nextSequence())
        body.appendInterfaceInfo(index: index, flags: 0, change: 0)
        body.appendAttribute(type: Self.linkGSOMaximumSize, u32: UInt32(bytes))
        try transact(body, "set link \(index) gso_max_size \(bytes)")
    }

    /// Adds `address/prefixLength` (with its broadcast address) to the interface.
    public func addAddress(_ address: IPv4Address, prefixLength: Int, index: Int32) throws(LinkError) {
        var body = Message(type: Self.newAddress, flags: Self.request | Self.ack | Self.create | Self.replace,
                           sequence: nextSequence())
        body.appendAddressInfo(prefixLength: prefixLength, index: index)
        body.appendAttribute(type: Self.addressLocal, address: address)
        body.appendAttribute(type: Self.addressAddress, address: address)
        let broadcast = IPv4Address(rawValue: address.rawValue | ~IPv4Address.mask(prefixLength: prefixLength).rawValue)
        body.appendAttribute(type: Self.addressBroadcast, address: broadcast)
        try transact(body, "add address \(address)/\(prefixLength)")
    }

    /// Removes `address/prefixLength`; removing one that is not there is not an error.
    public func removeAddress(_ address: IPv4Address, prefixLength: Int, index: Int32) throws(LinkError) {
        var body = Message(type: Self.deleteAddress, flags: Self.request | Self.ack, sequence: nextSequence())
        body.appendAddressInfo(prefixLength: prefixLength, index: index)
        body.appendAttribute(type: Self.addressLocal, address: address)
        try transact(body, "remove address \(address)/\(prefixLength)", ignoring: [EADDRNOTAVAIL, ENODEV])
    }

    /// Sets (or replaces) the default route via `gateway` out of the interface.
    public func replaceDefaultRoute(via gateway: IPv4Address, index: Int32) throws(LinkError) {
        var body = Message(type: Self.newRoute, flags: Self.request | Self.ack | Self.create | Self.replace,
                           sequence: nextSequence())
        body.appendRouteInfo(scope: 0, type: Self.unicastRoute)
        body.appendAttribute(type: Self.routeGateway, address: gateway)
        body.appendAttribute(type: Self.routeOutputInterface, u32: UInt32(bitPattern: index))
        try transact(body, "default route via \(gateway)")
    }

    /// Removes the default route via `gateway`; a missing route is not an error.
    public func removeDefaultRoute(via gateway: IPv4Address, index: Int32) throws(LinkError) {
        var body = Message(type: Self.deleteRoute, flags: Self.request | Self.ack, sequence: nextSequence())
        body.appendRouteInfo(scope: 0, type: Self.unicastRoute)
        body.appendAttribute(type: Self.routeGateway, address: gateway)
        body.appendAttribute(type: Self.routeOutputInterface, u32: UInt32(bitPattern: index))
        try transact(body, "remove default route via \(gateway)", ignoring: [ESRCH, ENODEV])
    }

    /// The destinations of IPv4 routes of type `local` in the local and main
    /// tables (those every packet meets; a policy table's, such as a TPROXY
    /// setup's `local 0.0.0.0/0`, only marked ones), as network and prefix
    /// length; empty when the dump fails.
    public func localRoutes() -> [(IPv4Address, Int)] {
        var message = Message(type: Self.getRoute, flags: Self.request | Self.dump, sequence: nextSequence())
        message.appendRouteDumpInfo()
        let bytes = message.finished()
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { return [] }
        var found: [(IPv4Address, Int)] = []
        var buffer = [UInt8](repeating: 0, count: 32_768)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { return found }
            var offset = 0
            while offset + 16 <= count {
                let (length, type) = buffer.withUnsafeBytes { raw in
                    (Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self))
                }
                guard length >= 16, offset + length <= count else { return found }
                if type == Self.done || type == Self.errorMessage { return found }
                if type == Self.newRoute, length >= 28 {
                    buffer.withUnsafeBytes { raw in
                        if let route = Self.localRoute(UnsafeRawBufferPointer(rebasing: raw[(offset + 16)..<(offset + length)])) {
                            found.append(route)
                        }
                    }
                }
                offset += (length + 3) & ~3
            }
        }
    }

    /// The destination of an IPv4 `local` route's rtmsg and attributes.
    static func localRoute(_ body: UnsafeRawBufferPointer) -> (IPv4Address, Int)? {
        guard body.count >= 12, body[0] == UInt8(AF_INET), body[7] == localRouteType,
              body[4] == localTable || body[4] == mainTable, body[1] > 0 else { return nil }
        let prefixLength = Int(body[1])
        var offset = 12
        while offset + 4 <= body.count {
            let length = Int(body.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = body.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
            guard length >= 4, offset + length <= body.count else { return nil }
            if type == routeDestination, length == 8 {
                let octets = Array(body[(offset + 4)..<(offset + 8)])
                return (IPv4Address(octets[0], octets[1], octets[2], octets[3]), prefixLength)
            }
            offset += (length + 3) & ~3
        }
        return nil
    }

    private func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Sends one request and reads until its ACK (an error message with code 0).
    private func transact(_ message: Message, _ what: String, ignoring: [Int32] = []) throws(LinkError) {
        var bytes = message.finished()
        // Without an address, a netlink socket sends to the kernel (port 0).
        let sent = bytes.withUnsafeMutableBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == bytes.count else { throw LinkError.system(operation: "netlink \(what)", errno: ErrorNumber(rawValue: errno)) }
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw LinkError.system(operation: "netlink \(what)", errno: ErrorNumber(rawValue: errno))
            }
            var offset = 0
            while offset + 16 <= count {
                let (length, type, seq) = buffer.withUnsafeBytes { raw in
                    (Int(raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
                     raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
                     raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
                }
                guard length >= 16, offset + length <= count else { break }
                if type == Self.errorMessage, seq == message.sequence, length >= 20 {
                    let code = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 16, as: Int32.self) }
                    if code == 0 || ignoring.contains(-code) { return }
                    throw LinkError.system(operation: "netlink \(what)", errno: ErrorNumber(rawValue: -code))
                }
                offset += (length + 3) & ~3
            }
        }
    }

    // rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h)
    static let request: UInt16 = 0x1, ack: UInt16 = 0x4, replace: UInt16 = 0x100, create: UInt16 = 0x400
    static let errorMessage: UInt16 = 2, done: UInt16 = 3, dump: UInt16 = 0x300, getRoute: UInt16 = 26
    static let routeDestination: UInt16 = 1, localRouteType: UInt8 = 2, localTable: UInt8 = 255, mainTable: UInt8 = 254
    static let newLink: UInt16 = 16, newAddress: UInt16 = 20, deleteAddress: UInt16 = 21
    static let newRoute: UInt16 = 24, deleteRoute: UInt16 = 25
    static let linkMTU: UInt16 = 4, linkGSOMaximumSize: UInt16 = 41
    static let addressAddress: UInt16 = 1, addressLocal: UInt16 = 2, addressBroadcast: UInt16 = 4
    static let routeOutputInterface: UInt16 = 4, routeGateway: UInt16 = 5
    static let unicastRoute: UInt8 = 1

    /// A netlink message being built: header, family header, attributes.
    struct Message {
        private(set) var bytes: [UInt8] = []
        let sequence: UInt32

        init(type: UInt16, flags: UInt16, sequence: UInt32) {
            self.sequence = sequence
            append(u32: 0)
            append(u16: type)
            append(u16: flags)
            append(u32: sequence)
            append(u32: 0)
        }

        /// struct ifinfomsg
        mutating func appendInterfaceInfo(index: Int32, flags: UInt32, change: UInt32) {
            bytes += [UInt8(AF_UNSPEC), 0]
            append(u16: 0)
            append(u32: UInt32(bitPattern: index))
            append(u32: flags)
            append(u32: change)
        }

        /// struct ifaddrmsg
        mutating func appendAddressInfo(prefixLength: Int, index: Int32) {
            bytes += [UInt8(AF_INET), UInt8(prefixLength), 0, 0]
            append(u32: UInt32(bitPattern: index))
        }

        /// struct rtmsg for a default IPv4 route in the main table, learnt by DHCP.
        mutating func appendRouteInfo(scope: UInt8, type: UInt8) {
            bytes += [UInt8(AF_INET), 0, 0, 0, 254, 16, scope, type]
            append(u32: 0)
        }

        /// struct rtmsg asking for every IPv4 route of every table.
        mutating func appendRouteDumpInfo() {
            bytes += [UInt8(AF_INET), 0, 0, 0, 0, 0, 0, 0]
            append(u32: 0)
        }

        mutating func appendAttribute(type: UInt16, u32 value: UInt32) {
            append(u16: 8)
            append(u16: type)
            append(u32: value)
        }

        mutating func appendAttribute(type: UInt16, address: IPv4Address) {
            append(u16: 8)
            append(u16: type)
            bytes += address.octets
        }

        /// The message with its length filled in.
        func finished() -> [UInt8] {
            var out = bytes
            let length = UInt32(out.count)
            withUnsafeBytes(of: length) { out.replaceSubrange(0..<4, with: $0) }
            return out
        }

        private mutating func append(u16 value: UInt16) { withUnsafeBytes(of: value) { bytes += $0 } }
        private mutating func append(u32 value: UInt32) { withUnsafeBytes(of: value) { bytes += $0 } }
    }
}
