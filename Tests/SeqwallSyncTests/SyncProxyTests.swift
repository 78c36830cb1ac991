import SeqwallCore
import SeqwallSync
import SeqwallTestSupport
import XCTest

/// Proxied connections' SYN proxy states in `proxies` messages (SyncProxyEntry,
/// docs/sync-protocol.md, Proxied connections).
final class SyncProxyTests: XCTestCase {
    static func proxy(port: UInt16, family: Family = .ipv4, answered: Bool = true) -> SyncProxyEntry {
        var state = SynProxyState(cookie: 0xC0C0_0000 | UInt32(port), clientISN: 77,
                                  options: SynCookieOptions(mss: 1460, windowScale: 7, sackPermitted: true,
                                                            timestamps: true),
                                  advertisedWindowScale: 7, clientWindow: 502, clientTimestamp: 9, proxyTimestamp: 10)
        state.sequenceOffset = 0x1234_5678
        state.timestampOffset = 0x9ABC_DEF0
        state.serverWindowScale = 9
        state.serverAnswered = answered
        return SyncProxyEntry(key: SyncTestPair.connection(port: port, family: family, now: 0).key, state: state)
    }

    func testProxiesRoundTripAndAreChecked() throws {
        var message = SyncMessage(kind: .proxies)
        message.wallTime = 42
        message.proxies = [Self.proxy(port: 1), Self.proxy(port: 2, family: .ipv6, answered: false)]
        let body = message.encoded(monotonicNow: 5)
        XCTAssertEqual(body.count, 8 + 2 + 2 * SyncProxyEntry.encodedLength)
        XCTAssertEqual(SyncMessage.decode(kind: .proxies, body: body, monotonicNow: 99), message)
        // A client window scale of 15, a count above the bound, a byte short: malformed.
        var badScale = body
        badScale[8 + 2 + 36 + 10] = 15
        XCTAssertNil(SyncMessage.decode(kind: .proxies, body: badScale, monotonicNow: 0))
        var tooMany = SyncMessage(kind: .proxies)
        tooMany.proxies = (1...UInt16(SyncMessage.maximumProxies + 1)).map { Self.proxy(port: $0) }
        XCTAssertNil(SyncMessage.decode(kind: .proxies, body: tooMany.encoded(monotonicNow: 0), monotonicNow: 0))
        XCTAssertNil(SyncMessage.decode(kind: .proxies, body: Array(body.dropLast()), monotonicNow: 0))
    }

    func testProxiesTravelOutsideTheStreamWithinOneDatagram() {
        var pair = SyncTestPair()
        pair.run(5)
        let proxies = (1...UInt16(20)).map { Self.proxy(port: $0, family: $0 % 2 == 0 ? .ipv6 : .ipv4) }
        pair.a.sendProxies(proxies, now: pair.now, wallNow: pair.wallNow)
        let sentBefore = pair.fromA.count
        pair.step()
        let sent = pair.fromA[sentBefore...].filter { $0[5] == SyncMessageKind.proxies.rawValue }
        XCTAssertEqual(sent.count, 2, "16 to a message")
        // Never fragmented on Ethernet: IPv6 and UDP headers beside it fit 1,500 bytes.
        XCTAssertLessThanOrEqual(sent.map(\.count).max() ?? 0, 1500 - 48)
        XCTAssertEqual(pair.proxiesOnB, proxies)
        // Lost, they are not asked for again: the next sweep sends them anew.
        pair.a.sendProxies(proxies, now: pair.now, wallNow: pair.wallNow)
        pair.step { $0[5] == SyncMessageKind.proxies.rawValue }
        pair.a.submit(SyncChange(.changed, SyncTestPair.connection(port: 1, now: pair.now)), now: pair.now)
        pair.run(20)
        XCTAssertEqual(pair.b.status.nacks_sent, 0)
        XCTAssertEqual(pair.appliedOnB.count, 1)
        XCTAssertEqual(pair.proxiesOnB.count, 20)
    }

    /// What a node that does not know the kind does with it (one of the release before it): its
    /// header is refused as malformed before anything else, and the node's place in the stream
    /// is untouched, so the data after it is applied without a NACK.
    func testAKindUnknownToTheReceiverIsRefusedWithoutHarm() {
        var pair = SyncTestPair()
        pair.run(5)
        pair.a.sendProxies([Self.proxy(port: 1)], now: pair.now, wallNow: pair.wallNow)
        var unknown: [UInt8] = []
        pair.step { datagram in
            guard datagram[5] == SyncMessageKind.proxies.rawValue else { return false }
            unknown = datagram
            return true
        }
        unknown[5] = 200
        XCTAssertEqual(pair.b.receive(unknown, now: pair.now, wallNow: pair.wallNow).refused, .malformed)
        pair.a.submit(SyncChange(.changed, SyncTestPair.connection(port: 2, now: pair.now)), now: pair.now)
        pair.run(20)
        XCTAssertEqual(pair.appliedOnB.map(\.connection.key.sourcePort), [2])
        XCTAssertEqual(pair.b.status.nacks_sent, 0)
        XCTAssertEqual(pair.b.status.refused["malformed"], 1)
    }

    func testABulkEndsWithItsProxiedConnectionsStates() {
        var pair = SyncTestPair()
        pair.bulkOnA = (1...20).map { SyncTestPair.connection(port: $0, now: pair.now) }
        pair.bulkProxiesOnA = [Self.proxy(port: 3), Self.proxy(port: 17)]
        pair.run(20)
        XCTAssertTrue(pair.b.status.in_sync)
        XCTAssertEqual(pair.proxiesOnB, pair.bulkProxiesOnA)
        let kinds = pair.fromA.map { $0[5] }.filter {
            $0 == SyncMessageKind.bulkEnd.rawValue || $0 == SyncMessageKind.proxies.rawValue
        }
        XCTAssertEqual(kinds, [SyncMessageKind.bulkEnd.rawValue, SyncMessageKind.proxies.rawValue],
                       "the states after the records")
    }
}
