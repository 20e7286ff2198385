// Offloads between sovnet forward and sovnet proxy: a sovnet extension of
// the `vm` framing, asked for and answered in HTTP, so that gvproxy and
// gvforwarder on either end are never sent anything they do not know:
//
//   forwarder → proxy   POST /sovnet/connect-offload HTTP/1.1 … (the vm head, another path)
//   proxy → forwarder   HTTP/1.1 200 OK\r\nSovnet-Offload: virtio-net-hdr\r\nContent-Length: 0\r\n\r\n
//
// after which every frame, both ways, begins with a 10-byte virtio-net
// header (`VirtioNetHeader`): TCP superframes and checksums left to
// complete pass from one kernel's tap to the other side's sockets as the
// tap gives them. gvproxy serves only /connect and answers any other path
// with 404; an older sovnet proxy does too; a forwarder that hears
// anything but the 200 (or nothing within 2 s) connects again with the
// plain /connect.

import SovnetWire

/// The offload request and its answer.
public enum OffloadLink {
    public static let requestPath = "/sovnet/connect-offload"
    public static let reply = Array("HTTP/1.1 200 OK\r\nSovnet-Offload: virtio-net-hdr\r\nContent-Length: 0\r\n\r\n".utf8)
    /// How long a forwarder waits for the answer.
    public static let replyTimeout: Duration = .seconds(2)

    /// Whether a response head accepts the offload.
    public static func accepts(_ head: String) -> Bool {
        head.hasPrefix("HTTP/1.1 200 ") && head.split(separator: "\r\n").dropFirst().contains("Sovnet-Offload: virtio-net-hdr")
    }

    /// The largest frame an offloading link carries: a TCP superframe with
    /// its header must fit the framing's 16-bit length.
    public static let maximumFrameLength = 65_535
    /// The most a tap may hand over as one superframe (its gso_max_size),
    /// so that header and frame fit `maximumFrameLength`.
    public static let superframeLimit = 65_535 - VirtioNetHeader.size - 18
}
