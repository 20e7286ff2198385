// The proxy's frame plane: each guest connection's frames read in batches,
// routed through the network core (and, for the NAT's share, its core), and
// the frames it decided written to the other guests' connections without
// waiting; a connection that cannot take them keeps a backlog, watched for
// writability, and its port is marked backlogged for the NAT meanwhile.
import Glibc
import Logging
import SovnetCore
import SovnetLink
import SovnetWire

extension Proxy {
    /// Sends the frames the NAT made, each port's in one call (with the
    /// virtio-net headers the NAT put before them for an offloading guest).
    func flushNAT() {
        guard !nat.frames.isEmpty else { return }
        nat.frames.withFramesByPort { port, frames, headerLength, bytes in
            guard guests[port] != nil else { return }
            network.countDelivered(to: port, frames: frames.count, bytes: bytes)
            for whole in frames {
                record(UnsafeRawBufferPointer(rebasing: whole[headerLength...]), "nat>\(port)")
            }
            transmit(frames, to: port)
        }
        nat.frames.removeAll()
        capture?.flush()
    }

    func accept(_ index: Int) {
        do {
            let connection = try listeners[index].listener.accept()
            (connection as? StreamFrameConnection)?.decoder.frameBudget = Self.framesPerTurn
            let port = network.attach()
            if (connection as? StreamFrameConnection)?.decoder.isReadingFrames == false { awaitingHead.insert(port) }
            guests[port] = (connection, index)
            try epoll.add(connection.readDescriptor, [.readable], token: LoopToken.guest(port.rawValue).rawValue)
            if listeners[index].single, listeners[index].listener.descriptor >= 0 {
                epoll.remove(listeners[index].listener.descriptor)
            }
            logger.info("connection on \(listeners[index].listener.endpoint) as \(port)")
        } catch {
            warnings.warning("accept", "accept on \(listeners[index].listener.endpoint): \(error)")
            notifications?.send(.hypervisorError)
        }
    }

    /// Reads a batch from a guest and delivers it; false when the guest is gone.
    func serve(_ port: PortID) -> Bool {
        guard let guest = guests[port] else { return false }
        outgoing.removeAll(keepingCapacity: true)
        made.removeAll(keepingCapacity: true)
        segmentsThisBatch = 0
        let now = ContinuousClock.now
        let stream = guest.connection as? StreamFrameConnection
        let status: ReceiveStatus
        var changes: [BindingChange] = []
        do {
            defer { changes = network.takeBindingChanges() }
            status = try guest.connection.receive { whole in
                guard stream?.virtioHeaders == true else { return route(whole, header: nil, from: port, now: now) }
                if network.ports.update(port, { $0.offload = true }) {
                    logger.info("\(port) carries offloads (virtio-net headers)")
                }
                guard whole.count >= VirtioNetHeader.size + EthernetView.headerLength,
                      let header = try? VirtioNetHeader(whole) else {
                    network.countDrop(.badOffload)
                    return
                }
                route(whole, header: header, from: port, now: now)
            }
        } catch LinkError.framing(.otherRequest) {
            handOverToAPI(port)
            return true
        } catch {
            warnings.warning("guest-read", "\(port): \(error)")
            return false
        }
        if notifications != nil, announced[port] == nil, let mac = network.learnedMAC(on: port) {
            announced[port] = mac
            notifications?.send(.connectionEstablished, mac: mac.description)
        }
        if stream?.decoder.hasCompleteFrame == true { pendingPorts.insert(port) }
        if stream?.decoder.isReadingFrames == true { awaitingHead.remove(port) }
        for change in changes { follow(change, now: now) }
        for lease in network.takeLeaseEvents() { log(lease) }
        for event in network.takeDHCPv6Events() { log(event) }
        if !outgoing.isEmpty {
            for target in Array(outgoing.keys) { deliver(to: target) }
        }
        for (bytes, target) in made {
            bytes.withUnsafeBytes { record($0, "gateway>\(target)") }
            transmit(bare: bytes, to: target)
        }
        capture?.flush()
        return status != .closed
    }

    /// Captures a frame crossing the switch and, with `-debug`, logs its
    /// summary after `direction` (`port 1>`, `gateway>port 1`, `nat>port 1`).
    func record(_ frame: UnsafeRawBufferPointer, _ direction: @autoclosure () -> String) {
        capture?.write(frame)
        if options.debug { logger.debug("\(direction()) \(FrameSummary.describe(Array(frame)).text)") }
    }

    /// Logs what the DHCP server did, at the default level.
    func log(_ lease: VirtualNetwork.LeaseEvent) {
        switch lease.event {
        case .acknowledged(let address, let mac): dhcpLogger.info("lease \(address) to \(mac) on \(lease.port)")
        case .released(let address): dhcpLogger.info("\(address) released on \(lease.port)")
        case .declined(let address): dhcpLogger.notice("\(address) declined on \(lease.port): in use elsewhere, held back")
        case .nak(let reason, let mac): dhcpLogger.info("NAK to \(mac) on \(lease.port): \(reason)")
        case .offered, .informed, .ignored: break
        }
    }

    /// Logs what the DHCPv6 server did, at the default level.
    func log(_ event: DHCPv6ServerEvent) {
        switch event {
        case .leased(let address, let port): dhcpLogger.info("DHCPv6 lease \(address) on \(port)")
        case .released(let address): dhcpLogger.info("DHCPv6 \(address) released")
        case .declined(let address): dhcpLogger.notice("DHCPv6 \(address) declined: in use elsewhere, held back")
        }
    }

    /// A guest address bound to another port: logged, and the NAT's flows
    /// of a guest that came back follow it.
    func follow(_ change: BindingChange, now: ContinuousClock.Instant) {
        if let from = change.from {
            logger.info("\(change.address) (\(change.link.mac)) is on \(change.link.port) now, back from \(from)")
            nat.follow(change, now: now)
        } else if change.address.isIPv6 {
            logger.info("\(change.link.port) uses \(change.address) (\(change.link.mac)); bound to it")
        } else {
            logger.info("\(change.link.port) uses \(change.address) (\(change.link.mac)) without a lease; bound to it")
        }
    }

    /// One frame from a guest, through the network core. `header` is its
    /// virtio-net header on an offloading port: a checksum left to complete
    /// is completed here unless the frame is TCP (the NAT trusts those, as
    /// it would a NIC's checksum offload), so every other parser can check it.
    func route(_ whole: UnsafeRawBufferPointer, header: VirtioNetHeader?, from port: PortID,
                       now: ContinuousClock.Instant) {
        var header = header
        let frame = header == nil ? whole : UnsafeRawBufferPointer(rebasing: whole[VirtioNetHeader.size...])
        if var pending = header, pending.flags & VirtioNetHeader.needsChecksum != 0, pending.gsoType == 0, !Self.isTCP(frame) {
            SoftwareOffload.completeChecksum(UnsafeMutableRawBufferPointer(mutating: frame), header: pending)
            pending.flags = VirtioNetHeader.dataValid
            pending.store(at: UnsafeMutableRawPointer(mutating: whole.baseAddress!))
            header = pending
        }
        record(frame, "\(port)>")
        deliveries.removeAll(keepingCapacity: true)
        let trusted = header.map { $0.flags & (VirtioNetHeader.needsChecksum | VirtioNetHeader.dataValid) != 0 } ?? false
        network.receive(frame, from: port, now: now, into: &deliveries, nat: nat, checksumTrusted: trusted)
        for delivery in deliveries {
            switch delivery {
            case .forward(let targets):
                for target in targets { forward(whole, frame, header: header, to: target) }
            case .send(let bytes, let target):
                made.append((bytes, target))
            case .resolve(let query, let upstream):
                dnsUpstreams.send(query, to: upstream)
            case .nat:
                break
            }
        }
    }

    /// A frame switched to another guest: as it is between ports alike;
    /// onto an offloading port with a plain header; off one as the plain
    /// frames it stands for (checksum completed, superframe segmented),
    /// each no longer than a plain guest's MTU allows: a longer one is
    /// dropped and counted, since the guest's end would take it for a
    /// broken stream and reconnect.
    func forward(_ whole: UnsafeRawBufferPointer, _ frame: UnsafeRawBufferPointer, header: VirtioNetHeader?,
                         to target: PortID) {
        switch SoftwareOffload.conversion(from: header, toOffloading: network.ports[target]?.offload == true) {
        case .unchanged: outgoing[target, default: []].append(header == nil ? frame : whole)
        case .addPlainHeader: made.append((Array(frame), target))
        case .removeHeader:
            guard frame.count <= options.maximumFrameLength else { return network.countDrop(.oversizedFrame) }
            made.append((Array(frame), target))
        case .finishInSoftware:
            guard segmentsThisBatch < Self.maximumSegmentsPerBatch, let header,
                  let plain = SoftwareOffload.frames(of: frame, header: header) else { return network.countDrop(.badOffload) }
            segmentsThisBatch += plain.count
            for segment in plain {
                guard segment.count <= options.maximumFrameLength else {
                    network.countDrop(.oversizedFrame)
                    continue
                }
                made.append((segment, target))
            }
        }
    }

    /// A `-listen` connection that asked for the control API, not /connect:
    /// the API server takes the socket and the bytes read so far.
    func handOverToAPI(_ port: PortID) {
        guard let guest = guests.removeValue(forKey: port) else { return }
        awaitingHead.remove(port)
        epoll.remove(guest.connection.readDescriptor)
        network.forget(port, now: .now)
        logger.debug("connection on \(port) is a control API request")
        guard let stream = guest.connection as? StreamFrameConnection else {
            guest.connection.close()
            return
        }
        let buffered = stream.decoder.drainBuffered()
        api.adopt(descriptor: stream.releaseDescriptor(), buffered: buffered)
    }

    /// Sends a frame that has no virtio-net header, giving it a plain one
    /// when `port` is an offloading guest's.
    func transmit(bare bytes: [UInt8], to port: PortID) {
        if network.ports[port]?.offload == true {
            (VirtioNetHeader.plain + bytes).withUnsafeBytes { transmit([$0], to: port) }
        } else {
            bytes.withUnsafeBytes { transmit([$0], to: port) }
        }
    }

    func deliver(to target: PortID) {
        guard let frames = outgoing.removeValue(forKey: target), !frames.isEmpty else { return }
        transmit(frames, to: target)
    }

    /// Sends frames to a guest without waiting: what its connection cannot
    /// take now waits in the connection's backlog, the port is watched for
    /// writability, and the NAT holds back flows toward it meanwhile.
    func transmit(_ frames: [UnsafeRawBufferPointer], to port: PortID) {
        guard let guest = guests[port], !awaitingHead.contains(port) else { return }
        do {
            try guest.connection.enqueue(frames)
        } catch {
            warnings.warning("guest-write", "\(port): \(error)")
        }
        watchOutput(port)
    }

    /// Writes a guest's backlog once its connection is writable.
    func flush(_ port: PortID) {
        guard let guest = guests[port] else { return }
        do {
            try guest.connection.flushBacklog()
        } catch {
            warnings.warning("guest-write", "\(port): \(error)")
        }
        watchOutput(port)
    }

    /// Watches a guest's connection for writability exactly while it has a backlog.
    func watchOutput(_ port: PortID) {
        guard let guest = guests[port] else { return }
        let backlog = guest.connection.hasBacklog
        guard network.ports.update(port, { $0.backlogged = backlog }) else { return }
        let connection = guest.connection
        let token = LoopToken.guest(port.rawValue).rawValue
        if backlog {
            if connection.sendDescriptor == connection.readDescriptor {
                try? epoll.modify(connection.readDescriptor, [.readable, .writable], token: token)
            } else {
                try? epoll.add(connection.sendDescriptor, [.writable], token: token)
            }
        } else {
            if connection.sendDescriptor == connection.readDescriptor {
                try? epoll.modify(connection.readDescriptor, [.readable], token: token)
            } else {
                epoll.remove(connection.sendDescriptor)
            }
            nat.backlogDrained(port)
        }
    }

    /// Forgets a guest; true when the proxy should exit (`--exit-on-disconnect`).
    func disconnect(_ port: PortID) throws -> Bool {
        guard let guest = guests.removeValue(forKey: port) else { return false }
        epoll.remove(guest.connection.readDescriptor)
        pendingPorts.remove(port)
        awaitingHead.remove(port)
        if network.ports.isBacklogged(port), guest.connection.sendDescriptor != guest.connection.readDescriptor {
            epoll.remove(guest.connection.sendDescriptor)
        }
        guest.connection.close()
        let now = ContinuousClock.now
        network.detach(port, now: now)
        nat.detach(port, now: now)
        logger.notice("guest on \(port) disconnected")
        if let mac = announced.removeValue(forKey: port) { notifications?.send(.connectionClosed, mac: mac.description) }
        let entry = listeners[guest.listener]
        if entry.single && options.exitOnDisconnect { return true }
        if entry.single { try watch(listener: guest.listener) }
        return false
    }
}
