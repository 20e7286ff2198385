import Foundation
import SovnetLink
import SovnetWire
import Testing
@testable import SovnetCore

/// The gateway's resolver with queries recorded from a real guest (dig in
/// the gvproxy capture): local answers, forwarding with ID rewriting, retry
/// on the next upstream, SERVFAIL, FORMERR.
@Suite struct DNSResolverTests {
    let now = ContinuousClock.now
    let client = DNSClient(address: .v4(IPv4Address(192, 168, 127, 2)), port: 46102,
                           mac: MACAddress(0x5A, 0x94, 0xEF, 0xE4, 0x0C, 0xEE), switchPort: PortID(1),
                           server: .v4(IPv4Address(192, 168, 127, 1)))

    /// The DNS payloads of the guest's queries in the gvproxy capture.
    static func recordedQueries() throws -> [[UInt8]] {
        try PcapReader.frames(at: VirtualNetworkTests.gvproxyCapture, filter: "udp dst port 53").map { Array($0.bytes[42...]) }
    }

    func resolver(upstreams: Int) -> DNSResolver {
        let local = DNSResolver.defaultRecords(gateway: [.v4(IPv4Address(192, 168, 127, 1)), .v6(IPv6Address("fd00::1")!)],
                                               host: [.v4(IPv4Address(192, 168, 127, 254)), .v6(IPv6Address("fd00::254")!)])
        return DNSResolver(zones: local.zones, records: local.records, upstreamCount: upstreams, seed: 3)
    }

    func answer(_ actions: [DNSResolverAction]) throws -> DNSMessage {
        guard case .answer(let bytes, let to)? = actions.first, actions.count == 1 else {
            throw ShellLikeError("expected one answer, got \(actions)")
        }
        #expect(to == client)
        return try DNSMessage.parse(bytes)
    }

    @Test func localZonesAnswerLikeGvproxyAndBetter() throws {
        var resolver = resolver(upstreams: 1)
        let queries = try Self.recordedQueries()
        // gateway.containers.internal: gvproxy answered 192.168.127.1, and so do we.
        let gateway = try answer(queries[0].withUnsafeBytes { resolver.query($0, from: client, now: now) })
        #expect(gateway.id == 56957)
        #expect(gateway.answers.map(\.data) == [.a(IPv4Address(192, 168, 127, 1))])
        #expect(gateway.flags.authoritative && gateway.flags.responseCode == .noError)
        // host.docker.internal: gvproxy v0.6.2 said NXDOMAIN; the host alias is the answer.
        let host = try answer(queries[1].withUnsafeBytes { resolver.query($0, from: client, now: now) })
        #expect(host.answers.map(\.data) == [.a(IPv4Address(192, 168, 127, 254))])
        // An unknown name in a local zone, and another type for a known one.
        let unknown = DNSMessage(id: 5, flags: DNSFlags(rawValue: 0x0100),
                                 questions: [DNSQuestion(name: "nothing.containers.internal", type: .a)])
        let nx = try answer(try unknown.bytes().withUnsafeBytes { resolver.query($0, from: client, now: now) })
        #expect(nx.flags.responseCode == .nameError)
        let aaaa = DNSMessage(id: 6, flags: DNSFlags(rawValue: 0x0100),
                              questions: [DNSQuestion(name: "GATEWAY.containers.internal", type: .aaaa)])
        let gatewayIPv6 = try answer(try aaaa.bytes().withUnsafeBytes { resolver.query($0, from: client, now: now) })
        #expect(gatewayIPv6.answers.map(\.data) == [.aaaa(IPv6Address("fd00::1")!)], "the gateway's IPv6 address")
        let mx = DNSMessage(id: 7, flags: DNSFlags(rawValue: 0x0100),
                            questions: [DNSQuestion(name: "host.containers.internal", type: .mx)])
        let nodata = try answer(try mx.bytes().withUnsafeBytes { resolver.query($0, from: client, now: now) })
        #expect(nodata.flags.responseCode == .noError && nodata.answers.isEmpty)
    }

    @Test func othersAreForwardedWithANewIDAndRelayed() throws {
        var resolver = resolver(upstreams: 2)
        let query = try Self.recordedQueries()[3]  // TXT? example.test
        let actions = query.withUnsafeBytes { resolver.query($0, from: client, now: now) }
        guard case .forward(let forwarded, let upstream)? = actions.first else {
            Issue.record("not forwarded: \(actions)")
            return
        }
        #expect(upstream == 0)
        #expect(Array(forwarded[2...]) == Array(query[2...]), "forwarded unchanged but for the ID")
        // The recorded answer, as upstream would send it under the new ID.
        let recorded = try PcapReader.frames(at: VirtualNetworkTests.gvproxyCapture, filter: "udp src port 53")[3].bytes
        var reply = Array(recorded[42...])
        reply[0...1] = forwarded[0...1]
        #expect(reply.withUnsafeBytes { resolver.upstreamReply($0, from: 1) }.isEmpty, "only the asked upstream may answer")
        let relayed = try answer(reply.withUnsafeBytes { resolver.upstreamReply($0, from: 0) })
        #expect(relayed.id == 13083)
        #expect(relayed.answers.map(\.data) == [.txt([Array("sovnet test".utf8)])])
        #expect(resolver.nextDeadline == nil)
        #expect(reply.withUnsafeBytes { resolver.upstreamReply($0, from: 0) }.isEmpty, "a second copy is stray")
    }

    @Test func silentUpstreamsLeadToTheNextThenServfail() throws {
        var resolver = resolver(upstreams: 2)
        let query = try Self.recordedQueries()[2]
        _ = query.withUnsafeBytes { resolver.query($0, from: client, now: now) }
        #expect(resolver.tick(now: now + .milliseconds(1999)).isEmpty)
        guard case .forward(_, let upstream)? = resolver.tick(now: now + .seconds(2)).first else {
            Issue.record("no retry")
            return
        }
        #expect(upstream == 1)
        let failure = try answer(resolver.tick(now: now + .seconds(4)))
        #expect(failure.flags.responseCode == .serverFailure)
        #expect(failure.id == 28717 && failure.questions.first?.name == "example.test")
        #expect(resolver.counters["servfail"] == 1)
    }

    @Test func malformedQueries() throws {
        var resolver = resolver(upstreams: 1)
        #expect([UInt8]([1, 2, 3]).withUnsafeBytes { resolver.query($0, from: client, now: now) }.isEmpty)
        let broken: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1]
        let formerr = try answer(broken.withUnsafeBytes { resolver.query($0, from: client, now: now) })
        #expect(formerr.id == 0x1234 && formerr.flags.responseCode == .formatError)
        #expect(resolver.counters["malformed"] == 1 && resolver.counters["formerr"] == 1)
    }

    @Test func waitingQueriesAreBoundedPerPortAndInAll() throws {
        var table = resolver(upstreams: 1)
        table.maximumPending = 6
        table.maximumPendingPerPort = 4
        func query(_ id: UInt16, from port: Int) -> [DNSResolverAction] {
            let message = DNSMessage(id: id, flags: DNSFlags(rawValue: 0x0100),
                                     questions: [DNSQuestion(name: DNSName("n\(id).never.test"), type: .a)])
            var asker = client
            asker.switchPort = PortID(port)
            return (try? message.bytes())?.withUnsafeBytes { table.query($0, from: asker, now: now) } ?? []
        }
        func isForward(_ actions: [DNSResolverAction]) -> Bool {
            if case .forward? = actions.first { return true }
            return false
        }
        #expect((0..<4).allSatisfy { isForward(query($0, from: 1)) })
        let refused = try DNSMessage.parse({ if case .answer(let bytes, _)? = query(4, from: 1).first { return bytes }; return [] }())
        #expect(refused.flags.responseCode == .serverFailure && refused.id == 4)
        #expect(isForward(query(5, from: 2)) && isForward(query(6, from: 2)))
        #expect(!isForward(query(7, from: 3)), "six wait in all")
        #expect(table.pendingCount == 6 && table.counters["servfail-limit"] == 2)
        // Once they time out, new queries are forwarded again.
        _ = table.tick(now: now + .seconds(3))
        #expect(table.pendingCount == 0 && isForward(query(8, from: 1)))
    }

    @Test func forwardedIDsStayUniqueWhenTheTableIsNearlyFull() {
        var table = resolver(upstreams: 1)
        table.maximumPending = 65_536
        table.maximumPendingPerPort = 65_536
        var ids = Set<UInt16>()
        for index in 0..<65_536 {
            let message = DNSMessage(id: 1, flags: DNSFlags(rawValue: 0x0100),
                                     questions: [DNSQuestion(name: DNSName("n\(index).test"), type: .a)])
            let actions = (try? message.bytes())?.withUnsafeBytes { table.query($0, from: client, now: now) } ?? []
            guard case .forward(let bytes, _)? = actions.first else { continue }
            ids.insert(UInt16(bytes[0]) << 8 | UInt16(bytes[1]))
        }
        #expect(ids.count == 65_536)
        let message = DNSMessage(id: 1, flags: DNSFlags(rawValue: 0x0100), questions: [DNSQuestion(name: "full.test", type: .a)])
        let last = (try? message.bytes())?.withUnsafeBytes { table.query($0, from: client, now: now) } ?? []
        guard case .answer? = last.first else {
            Issue.record("a full table answers SERVFAIL: \(last)")
            return
        }
    }
}

struct ShellLikeError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
