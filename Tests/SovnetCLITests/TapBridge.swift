import Foundation
import Glibc
import SovnetLink
import Synchronization

/// The host side of a test network: a tap device in a namespace of the
/// test's (where a real DHCP server and services run) joined to a framed
/// socket that `sovnet forward` dials. It stands in for gvproxy with the
/// kernel's own stack and dnsmasq behind it, and can be killed and restarted.
final class TapBridge: @unchecked Sendable {
    let tap: TapDevice
    let endpoint: Endpoint
    let framing: Framing
    private let stopping = Atomic<Bool>(false)
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    /// The guest connection being served, and a lock for writing to it.
    private let sending = NSLock()
    private var current: FrameEndpoint?

    /// Creates the tap and moves it into `namespace` (its descriptor stays here).
    init(tapName: String, namespace: TestNamespace, endpoint: Endpoint, framing: Framing) throws {
        tap = try TapDevice(name: tapName)
        try shell("ip link set \(tapName) netns \(namespace.name)")
        self.endpoint = endpoint
        self.framing = framing
    }

    /// Listens and moves frames until `stop`; one guest connection at a time.
    func start() throws {
        nonisolated(unsafe) let listener = try FrameListener(endpoint: endpoint, framing: framing)
        stopping.store(false, ordering: .sequentiallyConsistent)
        let thread = Thread { [self] in
            defer { listener.close(); finished.signal() }
            var accepting = pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)
            while !stopping.load(ordering: .sequentiallyConsistent) {
                guard poll(&accepting, 1, 50) > 0, let connection = try? listener.accept() else { continue }
                sending.withLock { current = connection }
                pump(connection)
                sending.withLock {
                    current = nil
                    connection.close()
                }
            }
        }
        self.thread = thread
        thread.start()
    }

    /// Sends `frame` to the connected guest as if the host had sent it; false
    /// when no guest is connected.
    func inject(_ frame: [UInt8]) throws -> Bool {
        try sending.withLock {
            guard let current else { return false }
            try current.send(frame)
            return true
        }
    }

    /// Stops listening and drops the connection, as a host that died would.
    func stop() {
        guard thread != nil else { return }
        stopping.store(true, ordering: .sequentiallyConsistent)
        finished.wait()
        thread = nil
        // Frames the guest sent meanwhile would reach the kernel late; drop them.
        _ = try? tap.receive { _ in }
    }

    private func pump(_ connection: FrameEndpoint) {
        var descriptors = [pollfd(fd: connection.readDescriptor, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: tap.readDescriptor, events: Int16(POLLIN), revents: 0)]
        var batch: [UnsafeRawBufferPointer] = []
        while !stopping.load(ordering: .sequentiallyConsistent) {
            guard poll(&descriptors, 2, 50) > 0 else { continue }
            do {
                if descriptors[0].revents != 0 {
                    batch.removeAll(keepingCapacity: true)
                    if try connection.receive({ batch.append($0) }) == .closed { return }
                    try tap.send(batch)
                }
                if descriptors[1].revents != 0 {
                    batch.removeAll(keepingCapacity: true)
                    _ = try tap.receive { batch.append($0) }
                    try sending.withLock { try connection.send(batch) }
                }
            } catch {
                return
            }
        }
    }
}
