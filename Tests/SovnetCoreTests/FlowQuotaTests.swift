import SovnetWire
import Testing
@testable import SovnetCore

/// Each guest's flows against the limit per guest.
@Suite struct FlowQuotaTests {
    let first = IPv4Address(192, 168, 127, 2)
    let second = IPv4Address(192, 168, 127, 3)

    @Test func aGuestAtItsLimitIsRefusedAndTheOthersAreNot() {
        var quota = FlowQuota(limit: 2)
        quota.opened(first)
        #expect(quota.admits(first))
        quota.opened(first)
        #expect(!quota.admits(first))
        #expect(quota.admits(second))
        quota.closed(first)
        #expect(quota.admits(first))
    }

    @Test func closingWhatWasNeverOpenedChangesNothing() {
        var quota = FlowQuota(limit: 1)
        quota.closed(first)
        #expect(quota.counts.isEmpty)
        quota.opened(first)
        quota.closed(first)
        quota.closed(first)
        #expect(quota.counts.isEmpty && quota.admits(first))
    }
}
