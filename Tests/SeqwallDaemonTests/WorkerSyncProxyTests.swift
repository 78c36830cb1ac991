import SeqwallCore
@testable import SeqwallDaemon
import SeqwallSync
import SeqwallTestSupport
import Testing

/// A proxied connection's SYN proxy state in the sync (WorkerSync, docs/sync-protocol.md,
/// Proxied connections): sent by the proxying worker as the connection opens and as its server
/// answers, not only by the sweep; and on the receiving worker, a state that comes before its
/// connection's record waits for it, for a sweep period at most.
@Suite("SYN proxy states in the sync")
struct WorkerSyncProxyTests {
    static let second: UInt64 = 1_000_000_000

    /// What the worker's sync has to send: the changes' connections, and the proxy entries.
    static func taken(_ sync: WorkerSync, _ worker: QueueWorker) -> ([SyncChange], [SyncProxyEntry]) {
        sync.take(worker.tracker.events, from: worker.tracker)
        worker.tracker.events.reset()
        var changes: [SyncChange] = [], proxies: [SyncProxyEntry] = []
        sync.ring.drain { changes.append($0) }
        sync.proxyRing.drain { proxies.append($0) }
        return (changes, proxies)
    }

    @Test("the proxying worker sends the state with the opening and with the server's answer, not with data",
          arguments: Family.allCases)
    func sentAsTheConnectionOpens(family: Family) throws {
        var exchange = try SynProxyWorkerTests(family)
        let sync = WorkerSync(capacity: 1024)
        exchange.worker.attachSync(sync)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 40000, destinationPort: 80)

        let (cookie, _) = try exchange.handshakeWithSeqwall(port: 40000)
        let (opened, openedProxies) = Self.taken(sync, exchange.worker)
        #expect(opened.map(\.connection.key) == [key])
        #expect(openedProxies.map(\.key) == [key])
        let unanswered = try #require(openedProxies.first?.state)
        #expect(!unanswered.serverAnswered && unanswered.cookie == cookie)

        // The server's SYN-ACK: the connection goes to SYN_RECV and on to ESTABLISHED, and the
        // state now has the server's offsets.
        _ = exchange.deliver(exchange.packet(fromClient: false, sequence: SynProxyWorkerTests.serverISN,
                                             acknowledgment: SynProxyWorkerTests.clientISN + 1, flags: [.syn, .ack],
                                             window: 65535, options: [.mss(1460), .windowScale(6)]))
        let (answeredChanges, answeredProxies) = Self.taken(sync, exchange.worker)
        // Once, though the connection changed state twice (SYN_RECV, ESTABLISHED).
        #expect(answeredChanges.count == 2)
        #expect(answeredProxies.count == 1 && answeredProxies.allSatisfy { $0.key == key && $0.state.serverAnswered })
        #expect(answeredProxies.first?.state == exchange.worker.tracker.proxyState(of: key))
        #expect(answeredProxies.first?.state.sequenceOffset == SynProxyWorkerTests.serverISN &- cookie)

        // Data changes no state: neither a record nor a state goes (the sweep keeps them fresh).
        _ = exchange.deliver(exchange.packet(fromClient: true, sequence: SynProxyWorkerTests.clientISN + 1,
                                             acknowledgment: cookie &+ 1, flags: [.ack, .psh], window: 502,
                                             payload: 100))
        let (dataChanges, dataProxies) = Self.taken(sync, exchange.worker)
        #expect(dataChanges.isEmpty && dataProxies.isEmpty)
    }

    @Test("a connection not proxied sends no state", arguments: Family.allCases)
    func notProxied(family: Family) {
        // Port 80 proxied, 8080 passed as usual: the tracker keeps proxy states.
        let at = SeqwallCore.SourceLocation(file: "test.rules", line: 1, column: 1)
        var policy = Policy()
        policy.defaultInbound = .block
        policy.rules = [
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80)], synProxy: SynProxyRule(), location: at),
            Rule(action: .pass, direction: .inbound, ports: [PortRange(8080)], location: at),
        ]
        let tracker = ConnectionTracker(policy: policy)
        tracker.recordsEvents = true
        var builder = PacketBuilder(source: family.client, destination: family.server)
        builder.destinationPort = 8080
        builder.flags = .syn
        var bytes = builder.build()
        let verdict = bytes.withUnsafeMutableBytes {
            tracker.process(UnsafeRawBufferPointer($0), wireLength: $0.count, hook: .input, now: Self.second)
        }
        #expect(verdict == .accept)
        let sync = WorkerSync(capacity: 1024)
        sync.take(tracker.events, from: tracker)
        var changes = 0, proxies = 0
        sync.ring.drain { _ in changes += 1 }
        sync.proxyRing.drain { _ in proxies += 1 }
        #expect(tracker.keepsProxyStates && changes == 1 && proxies == 0)
    }

    static func record(port: UInt16, now: UInt64) -> Connection {
        var connection = Connection(key: FlowKey(source: Family.ipv4.client, destination: Family.ipv4.server,
                                                 sourcePort: port, destinationPort: 80,
                                                 protocolNumber: TrackedProtocol.tcpNumber),
                                    direction: .inbound)
        connection.state = .established
        connection.status = [.seenReply, .assured]
        connection.expiresAt = now + 300 * second
        connection.createdAt = now
        return connection
    }

    static func state(_ cookie: UInt32, answered: Bool) -> SynProxyState {
        var state = SynProxyState(cookie: cookie, clientISN: 1000, options: SynCookieOptions(mss: 1460),
                                  advertisedWindowScale: 7, clientWindow: 502, clientTimestamp: 0, proxyTimestamp: 0)
        state.serverAnswered = answered
        state.sequenceOffset = answered ? 0x1234 : 0
        return state
    }

    @Test("on the receiving worker, a state before its record waits for it, for a sweep period at most")
    func stateBeforeItsRecord() {
        let tracker = ConnectionTracker(policy: Policy(), capacity: 4096)
        let sync = WorkerSync(capacity: 1024)
        var now: UInt64 = 10 * Self.second
        let early = SyncProxyEntry(key: Self.record(port: 1, now: now).key, state: Self.state(1, answered: true))
        let orphan = SyncProxyEntry(key: Self.record(port: 2, now: now).key, state: Self.state(2, answered: true))
        sync.apply([], proxies: [early, orphan], to: tracker, now: now)
        #expect(sync.waitingProxyCount == 2 && tracker.connectionCount == 0)

        // The record of the first, a little later (the sender's coalescing interval), and an
        // older copy of its state (sent at the opening, before the server answered) after it:
        // the waiting state is given to the connection, and the older one does not undo it.
        now += 50_000_000
        sync.apply([SyncEntry(.upsert, Self.record(port: 1, now: now))],
                   proxies: [SyncProxyEntry(key: early.key, state: Self.state(1, answered: false))],
                   to: tracker, now: now)
        #expect(tracker.proxyState(of: early.key) == early.state)
        #expect(tracker.connection(for: early.key)?.connection.proxied == true)
        #expect(sync.waitingProxyCount == 1)

        // The other's record never comes: after a sweep period its state is let go (the
        // sender's sweep sends it again), and a record that comes later finds none.
        now += WorkerSync.sweepPeriod
        sync.apply([], proxies: [], to: tracker, now: now)
        #expect(sync.waitingProxyCount == 0)
        sync.apply([SyncEntry(.upsert, Self.record(port: 2, now: now))], proxies: [], to: tracker, now: now)
        #expect(tracker.proxyState(of: orphan.key) == nil)
    }

    @Test("at most waitingLimit states wait")
    func bounded() {
        let tracker = ConnectionTracker(policy: Policy(), capacity: 4096)
        let sync = WorkerSync(capacity: 1024)
        let now: UInt64 = 10 * Self.second
        let many = (0..<(WorkerSync.waitingLimit + 100)).map { (index: Int) -> SyncProxyEntry in
            let port = UInt16(index + 1)
            let key = FlowKey(source: Family.ipv4.client, destination: Family.ipv4.server, sourcePort: port,
                              destinationPort: 80)
            return SyncProxyEntry(key: key, state: Self.state(UInt32(index), answered: true))
        }
        sync.apply([], proxies: many, to: tracker, now: now)
        #expect(sync.waitingProxyCount == WorkerSync.waitingLimit)
    }
}
