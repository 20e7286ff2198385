import SovnetWire
import Testing
@testable import SovnetCore

/// Where the NAT sends a guest's packet, by destination.
@Suite struct NATPolicyTests {
    let policy = NATPolicy()

    @Test func theHostAliasIsTranslatedToLoopback() {
        #expect(policy.decide(IPv4Address(192, 168, 127, 254)) == .host(.v4(IPv4Address(127, 0, 0, 1))))
    }

    @Test func otherAddressesGoWhereTheGuestAsked() {
        #expect(policy.decide(IPv4Address(10, 55, 0, 1)) == .host(.v4(IPv4Address(10, 55, 0, 1))))
        #expect(policy.decide(IPv4Address(198, 51, 100, 7)) == .host(.v4(IPv4Address(198, 51, 100, 7))))
    }

    @Test func loopbackOnlyThroughATranslation() {
        #expect(policy.decide(IPv4Address(127, 0, 0, 1)) == .refuse(.loopbackDestination))
        #expect(policy.decide(IPv4Address(127, 1, 2, 3)) == .refuse(.loopbackDestination))
    }

    @Test func theHostsOwnAddressesOnlyThroughATranslationOrWhenAllowed() {
        let own = HostAddressSet(addresses: [IPv4Address(10, 55, 0, 2), IPv4Address(192, 0, 2, 10)])
        #expect(policy.decide(IPv4Address(10, 55, 0, 2), hostAddresses: own) == .refuse(.hostAddress))
        #expect(policy.decide(IPv4Address(10, 55, 0, 1), hostAddresses: own) == .host(.v4(IPv4Address(10, 55, 0, 1))))
        #expect(NATPolicy(allowHostAddresses: true).decide(IPv4Address(192, 0, 2, 10), hostAddresses: own)
                == .host(.v4(IPv4Address(192, 0, 2, 10))))
        let translated = NATPolicy(translations: [.v4(IPv4Address(192, 168, 127, 254)): .v4(IPv4Address(10, 55, 0, 2))])
        #expect(translated.decide(IPv4Address(192, 168, 127, 254), hostAddresses: own) == .host(.v4(IPv4Address(10, 55, 0, 2))))
    }

    @Test func localRoutesAreTheHostToo() {
        let own = HostAddressSet(addresses: [IPv4Address(10, 55, 0, 2)],
                                 prefixes: [.init(IPv4Address(10, 99, 0, 0), length: 24), .init(IPv4Address(10, 55, 0, 7), length: 32)])
        #expect(policy.decide(IPv4Address(10, 99, 0, 200), hostAddresses: own) == .refuse(.hostAddress))
        #expect(policy.decide(IPv4Address(10, 55, 0, 7), hostAddresses: own) == .refuse(.hostAddress))
        #expect(policy.decide(IPv4Address(10, 99, 1, 1), hostAddresses: own) == .host(.v4(IPv4Address(10, 99, 1, 1))))
        #expect(own.prefixes.count == 1 && own.addresses.count == 2)
    }

    @Test func linkLocalOnlyWhenAllowed() {
        let metadata = IPv4Address(169, 254, 169, 254)
        #expect(policy.decide(metadata) == .refuse(.linkLocalDestination))
        #expect(NATPolicy(allowLinkLocal: true).decide(metadata) == .host(.v4(metadata)))
    }

    @Test func unroutableAddressesAreRefused() {
        #expect(policy.decide(IPv4Address(0, 0, 0, 0)) == .refuse(.noRoute))
        #expect(policy.decide(IPv4Address(224, 0, 0, 251)) == .refuse(.noRoute))
        #expect(policy.decide(.broadcast) == .refuse(.noRoute))
    }

    @Test func translationsComeFirst() {
        let custom = NATPolicy(translations: [.v4(IPv4Address(192, 168, 127, 253)): .v4(IPv4Address(10, 0, 0, 5)),
                                              .v4(IPv4Address(127, 0, 0, 9)): .v4(IPv4Address(127, 0, 0, 1))])
        #expect(custom.decide(IPv4Address(192, 168, 127, 253)) == .host(.v4(IPv4Address(10, 0, 0, 5))))
        #expect(custom.decide(IPv4Address(127, 0, 0, 9)) == .host(.v4(IPv4Address(127, 0, 0, 1))))
        #expect(custom.decide(IPv4Address(192, 168, 127, 254)) == .host(.v4(IPv4Address(192, 168, 127, 254))))
    }

    @Test func theMetadataServiceOnlyOverTCPAndOnlyWhenAllowed() {
        let metadata = NATPolicy.metadataService
        #expect(policy.decide(metadata) == .refuse(.linkLocalDestination))
        var open = NATPolicy()
        open.allowMetadataService = true
        #expect(open.decide(metadata, transport: .tcp) == .host(.v4(metadata)))
        #expect(open.decide(metadata, transport: .udp) == .refuse(.linkLocalDestination))
        #expect(open.decide(IPv4Address(169, 254, 1, 1)) == .refuse(.linkLocalDestination))
    }
}
