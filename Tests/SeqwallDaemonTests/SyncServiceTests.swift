import Foundation
import SeqwallControl
import SeqwallCore
@testable import SeqwallDaemon
import SeqwallTelemetry
import SeqwallTestSupport
import XCTest

/// Two daemons on fake kernel queues syncing over real UDP sockets on loopback: a connection
/// one tracks appears in the other's table, a delete follows it, and a refused datagram is
/// counted while the daemon carries on.
final class SyncServiceTests: XCTestCase {
    private func port(_ offset: UInt16) -> UInt16 { 20000 + UInt16(getpid() % 20000) + offset * 2 }

    private func syncStatus(_ daemon: RunningDaemon) throws -> SyncStatus? {
        try daemon.send(ControlRequest(command: .sync)).sync
    }

    private func list(_ daemon: RunningDaemon) throws -> [ConnectionRecord] {
        var records: [ConnectionRecord] = []
        _ = try ControlClient(path: daemon.controlPath).send(ControlRequest(command: .list)) { records.append($0) }
        return records
    }

    /// Two daemons on queue 0 syncing on loopback ports `port(offset)` and the next, with the
    /// key `keyBytes`; both started. Stop them with `stopBoth`.
    private struct Pair {
        let keys: TemporaryDirectory
        let a: RunningDaemon
        let b: RunningDaemon
        let addressOfB: MetricsAddress
    }

    private func startPair(offset: UInt16, keyBytes: [UInt8]) throws -> Pair {
        let keys = try TemporaryDirectory(prefix: "seqwall-sync-test")
        let key = try keys.file("sync.key", keyBytes)
        chmod(key, 0o600)
        let a = MetricsAddress(address: IPAddress("127.0.0.1")!, port: port(offset))
        let b = MetricsAddress(address: IPAddress("127.0.0.1")!, port: port(offset) + 1)
        let pair = Pair(keys: keys, a: try RunningDaemon(queues: [0], sync: SyncOptions(listen: a, peer: b, keyPath: key)),
                        b: try RunningDaemon(queues: [0], sync: SyncOptions(listen: b, peer: a, keyPath: key)),
                        addressOfB: b)
        pair.a.start()
        pair.b.start()
        return pair
    }

    private func stopBoth(_ pair: Pair) {
        XCTAssertEqual(pair.a.stop(), 0)
        XCTAssertEqual(pair.b.stop(), 0)
    }

    func testAConnectionOnOneNodeAppearsOnTheOtherAndLeavesWithADelete() throws {
        let pair = try startPair(offset: 0, keyBytes: (0..<32).map { UInt8($0 * 7 & 0xFF) })
        defer { stopBoth(pair) }
        let nodeA = pair.a, nodeB = pair.b
        XCTAssertTrue(try nodeB.eventually { try syncStatus(nodeB)?.in_sync == true })
        XCTAssertTrue(try nodeA.eventually { try syncStatus(nodeA)?.in_sync == true })

        let kernel = try XCTUnwrap(nodeA.kernels[0])
        kernel.enqueue([FakeKernelQueue.message(QueueWorkerTests.syn(port: 22, from: 40001), id: 1)])
        XCTAssertTrue(try nodeB.eventually { try list(nodeB).contains { $0.orig.sport == 40001 && $0.state == "SYN_SENT" } },
                      "B never had A's connection")
        XCTAssertEqual(try nodeA.send(ControlRequest(command: .flush)).count, 1)
        XCTAssertTrue(try nodeB.eventually { try list(nodeB).isEmpty }, "B kept a connection A flushed")

        // A stranger's datagram: refused and counted, nothing applied, the daemon carries on.
        let stranger = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(stranger) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port(0).bigEndian
        target.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let junk: [UInt8] = Array("SQWS".utf8) + [UInt8](repeating: 1, count: 60)
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(stranger, junk, junk.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertTrue(try nodeA.eventually { try syncStatus(nodeA)?.refused["unknown-peer"] == 1 })
        XCTAssertEqual(try nodeA.send(ControlRequest(command: .stats)).stats?.sync?.refused["unknown-peer"], 1)
        XCTAssertTrue(try syncStatus(nodeA)?.in_sync == true)
    }

    /// The link fails (every sendmmsg refused through the system-call seam): the failures are
    /// counted, a connection opened meanwhile still reaches the peer once the link is back
    /// (the peer sees the gap and asks for it), and the metrics show the sync.
    func testALostLinkIsCountedAndWhatWasLostArrivesAfterwards() throws {
        try SystemCallMock.withMock { mock in
            let pair = try startPair(offset: 1, keyBytes: Array(String(repeating: "0f", count: 32).utf8))
            defer { stopBoth(pair) }
            let nodeA = pair.a, nodeB = pair.b, b = pair.addressOfB
            XCTAssertTrue(try nodeB.eventually { try syncStatus(nodeB)?.in_sync == true })

            mock.fail("sendmmsg", errno: ENETUNREACH)
            let kernel = try XCTUnwrap(nodeA.kernels[0])
            kernel.enqueue([FakeKernelQueue.message(QueueWorkerTests.syn(port: 443, from: 40002), id: 1)])
            XCTAssertTrue(try nodeA.eventually {
                let status = try syncStatus(nodeA)
                return (status?.send_errors ?? 0) > 0 && (status?.entries_sent ?? 0) > 0
            })
            XCTAssertFalse(try list(nodeB).contains { $0.orig.sport == 40002 })

            mock.clearFaults()
            XCTAssertTrue(try nodeB.eventually { try list(nodeB).contains { $0.orig.sport == 40002 } },
                          "what was sent while the link was down never arrived")
            // The status is published every 50 ms: the resend it counts may show a little after
            // the peer has the connection.
            XCTAssertTrue(try nodeA.eventually { (try syncStatus(nodeA)?.resends ?? 0) > 0 },
                          "the gap was filled without a resend being counted")
            let metrics = DaemonStatistics(daemon: nodeA.daemon).metricsText()
            XCTAssertTrue(metrics.contains("seqwall_sync_resends_total{peer=\"\(b)\"}"), metrics)
            XCTAssertTrue(metrics.contains("seqwall_sync_in_sync{peer=\"\(b)\"}"), metrics)
        }
    }

    func testWithoutAPeerTheSyncRequestSaysSo() throws {
        let daemon = try RunningDaemon()
        daemon.start()
        defer { XCTAssertEqual(daemon.stop(), 0) }
        let reply = try daemon.send(ControlRequest(command: .sync))
        XCTAssertFalse(reply.ok)
        XCTAssertEqual(reply.error, "seqwall runs without state sync (--sync-peer)")
    }
}
