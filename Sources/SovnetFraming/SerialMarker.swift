// The `vm` framing over a serial line: a virtio console port (crosvm
// `--serial type=unix-stream,hardware=virtio-console,num=2`, QEMU
// `-device virtconsole`) for hypervisors without vsock. A sovnet extension;
// gvproxy has no such transport.
//
// A serial line has no connections: the guest may open the port while the
// host is in the middle of a frame, the forwarder may restart, the
// hypervisor may reconnect to a restarted proxy, and either side may then
// read from the middle of a frame. Markers let both find frame boundaries
// again:
//
//   guest → host  the `vm` request head (`POST /connect HTTP/1.1 …`, 85
//                 bytes) when the port is opened and again every
//                 `headInterval` (2 s), always between two frames;
//   host → guest  one reply to each head, between two frames:
//                 `HTTP/1.1 200 OK\r\nSovnet-Session: <16 hex digits>\r\n\r\n`,
//                 the session naming the host's connection, so a guest
//                 sees a new one when the proxy restarted.
//
// A reader starts unsynchronised and discards bytes until it has read a
// whole marker. From then on a marker may stand wherever a frame may; a
// length that cannot be a frame's (0, below 14, above the maximum) makes
// it unsynchronised again, and it discards until the next marker. Nothing
// is thrown for bad bytes on a serial line: they are counted.
/// A marker that a serial line's reader synchronises on.
public struct SerialMarker: Sendable, Equatable {
    /// The bytes the marker begins with.
    public let prefix: [UInt8]
    /// The marker's whole length: the prefix and the fixed-length rest.
    public let length: Int

    /// What the host reads: the guest's `vm` request head.
    public static func guestHead(path: String = "/connect") -> SerialMarker {
        let head = Framing.vmRequestHead(path: path)
        return SerialMarker(prefix: head, length: head.count)
    }

    /// What the guest reads: the host's reply, 16 hex digits of session after the prefix.
    public static let hostReply = SerialMarker(prefix: Array(hostReplyPrefix.utf8),
                                               length: hostReplyPrefix.utf8.count + 16 + 4)

    private static let hostReplyPrefix = "HTTP/1.1 200 OK\r\nSovnet-Session: "

    /// The host's reply for `session`.
    public static func hostReply(session: UInt64) -> [UInt8] {
        let digits = String(session, radix: 16)
        return Array((hostReplyPrefix + String(repeating: "0", count: 16 - digits.count) + digits + "\r\n\r\n").utf8)
    }

    /// The session in a whole host reply, or nil if it is not one.
    public static func session(inHostReply marker: UnsafeRawBufferPointer) -> UInt64? {
        let start = hostReply.prefix.count
        guard marker.count == hostReply.length else { return nil }
        return UInt64(String(decoding: marker[start..<(start + 16)], as: UTF8.self), radix: 16)
    }
}

/// Which end of a serial line a connection is.
public enum SerialRole: Sendable, Equatable {
    /// The guest: writes heads, reads the host's replies.
    case guest(requestPath: String)
    /// The host: reads heads, answers each with a reply naming `session`.
    case host(session: UInt64)

    /// What this end reads.
    public var incomingMarker: SerialMarker {
        switch self {
        case .guest: .hostReply
        case .host: .guestHead()
        }
    }

    /// How often the guest repeats its head, so that a host that lost step
    /// (or a new one) finds a boundary soon.
    public static let headInterval: Duration = .seconds(2)
    /// How often an unsynchronised guest repeats its head.
    public static let unsynchronisedHeadInterval: Duration = .milliseconds(250)
}
