import SeqwallCore
import SeqwallSync
import SeqwallTestSupport
import XCTest

/// What the coalescer does not send: a TCP connection over before the peer heard of it
/// (SyncCoalescer.isClosedUnheard), and with it the SYN proxy state it holds for its record
/// (SyncCoalescer.hold). docs/sync-protocol.md, Coalescing.
final class SyncCoalescerTests: XCTestCase {
    static func closing(_ connection: Connection, to state: TCPState) -> Connection {
        var closed = connection
        closed.state = state
        closed.packetsOriginal += 3
        closed.packetsReply += 2
        return closed
    }

    func testAConnectionOverBeforeItsFirstRecordIsNotSent() {
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 16)
        for (port, state) in [(UInt16(1), TCPState.timeWait), (2, .close)] {
            let opened = SyncTestPair.connection(port: port, now: 0)
            coalescer.add(SyncChange(.changed, opened), now: 0)
            coalescer.add(SyncChange(.changed, Self.closing(opened, to: state)), now: 10)
        }
        XCTAssertTrue(coalescer.take(now: 100).isEmpty, "over within the interval: nothing to carry")
        XCTAssertEqual(coalescer.closedUnsent, 2)
        // Still unheard of: a refresh of it (the sweep) carries nothing, its removal (port reuse)
        // no delete.
        var looked = Self.closing(SyncTestPair.connection(port: 1, now: 0), to: .timeWait)
        looked.packetsReply += 1
        coalescer.add(SyncChange(.refresh, looked), now: 200)
        coalescer.add(SyncChange(.removed, looked), now: 300)
        XCTAssertTrue(coalescer.take(now: 400).isEmpty)
        // The tuple's next connection is a connection of its own, sent when it lives on.
        let reopened = SyncTestPair.connection(port: 1, now: 300)
        coalescer.add(SyncChange(.changed, reopened), now: 300)
        XCTAssertEqual(coalescer.take(now: 400).map(\.connection), [reopened])
    }

    func testTheCloseOfAConnectionThePeerHoldsIsSent() {
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 16)
        let opened = SyncTestPair.connection(port: 1, now: 0)
        coalescer.add(SyncChange(.changed, opened), now: 0)
        XCTAssertEqual(coalescer.take(now: 50).map(\.connection), [opened])
        let closed = Self.closing(opened, to: .timeWait)
        coalescer.add(SyncChange(.changed, closed), now: 60)
        XCTAssertEqual(coalescer.take(now: 110).map(\.connection), [closed], "the peer must not keep it open")
        // Heard of through a bulk (noteSent) while a record of it waits: sent too.
        let bulked = SyncTestPair.connection(port: 2, now: 0)
        coalescer.add(SyncChange(.changed, bulked), now: 120)
        coalescer.noteSent(bulked)
        coalescer.add(SyncChange(.changed, Self.closing(bulked, to: .close)), now: 130)
        XCTAssertEqual(coalescer.take(now: 170).map(\.connection.state), [.close])
        XCTAssertEqual(coalescer.closedUnsent, 0)
    }

    func testOnlyTCPClosesAreLeftOut() {
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 16)
        // A UDP flow has no close: its record always goes.
        var datagram = SyncTestPair.connection(port: 1, now: 0)
        datagram.key = FlowKey(source: datagram.key.source, destination: datagram.key.destination, sourcePort: 1,
                               destinationPort: 53, protocolNumber: TrackedProtocol.udpNumber)
        datagram.state = .none
        coalescer.add(SyncChange(.changed, datagram), now: 0)
        // A TCP connection still closing (FIN_WAIT) is live: its record goes.
        let closing = Self.closing(SyncTestPair.connection(port: 2, now: 0), to: .finWait)
        coalescer.add(SyncChange(.changed, closing), now: 0)
        XCTAssertEqual(coalescer.take(now: 50).map(\.connection.key.sourcePort), [1, 2])
    }

    func testAProxyStateGoesRightAfterItsRecordOrNotAtAll() {
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 16)
        let unanswered = SyncProxyTests.proxy(port: 1, answered: false)
        let answered = SyncProxyTests.proxy(port: 1, answered: true)
        // No record of it waits: it goes at once.
        XCTAssertFalse(coalescer.hold(unanswered))
        // A record waits: held, the answered state kept over a later unanswered copy.
        let opened = SyncTestPair.connection(port: 1, now: 0)
        coalescer.add(SyncChange(.changed, opened), now: 0)
        XCTAssertTrue(coalescer.hold(unanswered))
        XCTAssertTrue(coalescer.hold(answered))
        XCTAssertTrue(coalescer.hold(unanswered))
        XCTAssertTrue(coalescer.take(now: 10).isEmpty)
        XCTAssertTrue(coalescer.takeProxies().isEmpty, "not before its record")
        XCTAssertEqual(coalescer.take(now: 50).map(\.connection), [opened])
        XCTAssertEqual(coalescer.takeProxies(), [answered])
        XCTAssertTrue(coalescer.takeProxies().isEmpty)
        // The record went: a later state goes at once.
        XCTAssertFalse(coalescer.hold(answered))
        // A connection over before the peer heard of it takes its held state with it; so does
        // one removed while its record waits.
        for (port, removed) in [(UInt16(2), false), (3, true)] {
            let brief = SyncTestPair.connection(port: port, now: 100)
            coalescer.add(SyncChange(.changed, brief), now: 100)
            XCTAssertTrue(coalescer.hold(SyncProxyTests.proxy(port: port)))
            if removed {
                coalescer.add(SyncChange(.removed, brief), now: 110)
            } else {
                coalescer.add(SyncChange(.changed, Self.closing(brief, to: .timeWait)), now: 110)
            }
        }
        XCTAssertTrue(coalescer.take(now: 200).isEmpty)
        XCTAssertTrue(coalescer.takeProxies().isEmpty)
    }

    /// Through two sessions: the record and its state reach the peer in the same step, the
    /// record first (the order the receiving worker applies them in, WorkerSync.apply).
    func testThePeerGetsTheStateWithTheRecord() {
        var pair = SyncTestPair()
        pair.run(5)
        let opened = SyncTestPair.connection(port: 1, now: pair.now)
        pair.a.submit(SyncChange(.changed, opened), now: pair.now)
        pair.a.sendProxies([SyncProxyTests.proxy(port: 1)], now: pair.now, wallNow: pair.wallNow)
        pair.step()
        XCTAssertTrue(pair.proxiesOnB.isEmpty, "held while the record waits")
        var steps = 0
        while pair.appliedOnB.isEmpty && steps < 20 {
            pair.step()
            steps += 1
        }
        XCTAssertEqual(pair.appliedOnB.map(\.connection.key), [opened.key])
        XCTAssertEqual(pair.proxiesOnB, [SyncProxyTests.proxy(port: 1)])
    }
}
