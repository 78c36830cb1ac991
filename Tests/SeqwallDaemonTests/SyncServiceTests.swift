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

    func testAConnectionOnOneNodeAppearsOnTheOtherAndLeavesWithADelete() throws {
        let keys = try TemporaryDirectory(prefix: "seqwall-sync-test")
        let key = try keys.file("sync.key", (0..<32).map { UInt8($0 * 7 & 0xFF) })
        chmod(key, 0o600)
        let a = MetricsAddress(address: IPAddress("127.0.0.1")!, port: port(0))
        let b = MetricsAddress(address: IPAddress("127.0.0.1")!, port: port(0) + 1)
        let nodeA = try RunningDaemon(queues: [0], sync: SyncOptions(listen: a, peer: b, keyPath: key))
        let nodeB = try RunningDaemon(queues: [0], sync: SyncOptions(listen: b, peer: a, keyPath: key))
        nodeA.start()
        nodeB.start()
        defer {
            XCTAssertEqual(nodeA.stop(), 0)
            XCTAssertEqual(nodeB.stop(), 0)
        }
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
        target.sin_port = a.port.bigEndian
        target.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let junk: [UInt8] = Array("SQWS".utf8) + [UInt8](repeating: 1, count: 60)
        _ = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(stranger, junk, junk.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertTrue(try nodeA.eventually { try syncStatus(nodeA)?.refused["unknown-peer"] == 1 })
        XCTAssertEqual(try nodeA.send(ControlRequest(command: .stats)).stats?.sync?.refused["unknown-peer"], 1)
        XCTAssertTrue(try syncStatus(nodeA)?.in_sync == true)
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
