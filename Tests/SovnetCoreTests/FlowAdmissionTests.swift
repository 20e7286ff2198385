import SovnetWire
import Testing
@testable import SovnetCore

/// The NAT's limits on new flows: per protocol, per guest port, and for all
/// protocols together.
@Suite struct FlowAdmissionTests {
    let first = PortID(1)
    let second = PortID(2)

    @Test func aPortAtItsLimitIsRefusedAndTheOthersAreNot() {
        let admission = FlowAdmission(maximumFlows: 10, maximumFlowsPerGuest: 2, maximumTotal: 100)
        admission.opened(.tcp, port: first)
        #expect(admission.refusal(.tcp, port: first) == nil)
        admission.opened(.tcp, port: first)
        #expect(admission.refusal(.tcp, port: first) == .guestFlowLimit)
        #expect(admission.refusal(.udp, port: first) == nil, "the limit is per protocol")
        #expect(admission.refusal(.tcp, port: second) == nil)
        admission.closed(.tcp, port: first)
        #expect(admission.refusal(.tcp, port: first) == nil)
        #expect(admission.guestLimitHits == 1 && admission.limitHits == 0)
    }

    @Test func theProtocolAndTotalLimitsCountEveryPort() {
        let admission = FlowAdmission(maximumFlows: 3, maximumFlowsPerGuest: 10, maximumTotal: 4)
        for port in 1...3 { admission.opened(.udp, port: PortID(port)) }
        #expect(admission.refusal(.udp, port: PortID(9)) == .flowLimit)
        #expect(admission.refusal(.tcp, port: PortID(9)) == nil)
        admission.opened(.icmp, port: first)
        #expect(admission.refusal(.tcp, port: PortID(9)) == .flowLimit, "four flows fill the descriptor budget")
        #expect(admission.limitHits == 2 && admission.total == 4)
    }

    @Test func aMovedFlowCountsOnItsNewPortAndClosingTwiceChangesNothing() {
        let admission = FlowAdmission(maximumFlows: 10, maximumFlowsPerGuest: 1, maximumTotal: 10)
        admission.opened(.tcp, port: first)
        admission.moved(.tcp, from: first, to: second)
        #expect(admission.refusal(.tcp, port: first) == nil)
        #expect(admission.refusal(.tcp, port: second) == .guestFlowLimit)
        admission.closed(.tcp, port: second)
        admission.closed(.tcp, port: second)
        admission.closed(.tcp, port: first)
        #expect(admission.total == 0 && admission.counts[.tcp] == 0)
    }
}
