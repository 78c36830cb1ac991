import Foundation
import SeqwallControl
@testable import SeqwallDaemon
import XCTest

/// `conntrack` requests on connections a worker tracked from packets of its (fake) kernel
/// queue, and the table carried across a restart by the state file.
final class ConnectionTableRequestTests: XCTestCase {
    /// Host mode: port 8080 open, everything else inbound blocked, no pickup.
    static let rules = """
        default in block
        default out pass
        pass in tcp to port 8080
        set pickup grace 0

        """

    /// Starts a daemon on queue 0 and has it judge SYNs from ports 40001 and 40002 to 8080
    /// (passed) and one to 9999 (blocked).
    private func startWithConnections(stateInterval: UInt32? = nil, directory: String? = nil) throws -> RunningDaemon {
        let daemon = try RunningDaemon(rules: Self.rules, stateInterval: stateInterval, queues: [0], directory: directory)
        daemon.start()
        let kernel = try XCTUnwrap(daemon.kernels[0])
        kernel.enqueue([
            FakeKernelQueue.message(QueueWorkerTests.syn(port: 8080, from: 40001), id: 1),
            FakeKernelQueue.message(QueueWorkerTests.syn(port: 8080, from: 40002), id: 2),
            FakeKernelQueue.message(QueueWorkerTests.syn(port: 9999, from: 40003), id: 3),
        ])
        XCTAssertTrue(try daemon.eventually {
            try daemon.send(ControlRequest(command: .stats)).stats?.queues.first?.seen == 3
        })
        return daemon
    }

    private func list(_ daemon: RunningDaemon, _ filter: ConnectionFilter? = nil) throws -> [ConnectionRecord] {
        var records: [ConnectionRecord] = []
        let reply = try ControlClient(path: daemon.controlPath).send(ControlRequest(command: .list, filter: filter)) {
            records.append($0)
        }
        XCTAssertEqual(reply, ControlReply(ok: true, count: records.count))
        return records
    }

    func testListGetDeleteAndFlush() throws {
        let daemon = try startWithConnections()
        defer { XCTAssertEqual(daemon.stop(), 0) }
        let stats = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.queues.first)
        XCTAssertEqual([stats.accepted, stats.dropped], [2, 1])

        XCTAssertEqual(try list(daemon).compactMap(\.orig.sport).sorted(), [40001, 40002])
        XCTAssertEqual(try list(daemon).map(\.state), ["SYN_SENT", "SYN_SENT"])
        let one = ConnectionFilter(proto: "tcp", sourcePort: 40001, destinationPort: 8080)
        XCTAssertEqual(try list(daemon, one).count, 1)
        XCTAssertEqual(try daemon.send(ControlRequest(command: .count, filter: one)), ControlReply(ok: true, count: 1))

        var deleted: [ConnectionRecord] = []
        let delete = try ControlClient(path: daemon.controlPath).send(ControlRequest(command: .delete, filter: one)) {
            deleted.append($0)
        }
        XCTAssertEqual(delete, ControlReply(ok: true, count: 1))
        XCTAssertEqual(deleted.map(\.orig.sport), [40001])
        XCTAssertEqual(try list(daemon).compactMap(\.orig.sport), [40002])

        XCTAssertEqual(try daemon.send(ControlRequest(command: .flush)), ControlReply(ok: true, count: 1))
        XCTAssertEqual(try daemon.send(ControlRequest(command: .count)), ControlReply(ok: true, count: 0))
    }

    func testRulesShowCountsWhatEachRuleDecided() throws {
        let daemon = try startWithConnections()
        defer { XCTAssertEqual(daemon.stop(), 0) }
        let rules = try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules)
        XCTAssertEqual(rules.rules.map(\.counters.passed), [2])
        XCTAssertEqual(rules.defaults.map(\.counters.blocked), [1, 0])
        let drops = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.rule_drops)
        XCTAssertEqual(drops.map(\.rule), ["default in block"])
    }

    func testAReloadReachesTheWorkersAndABrokenOneChangesNothing() throws {
        let daemon = try startWithConnections()
        defer { XCTAssertEqual(daemon.stop(), 0) }
        let kernel = try XCTUnwrap(daemon.kernels[0])
        try Self.rules.replacingOccurrences(of: "port 8080", with: "port 8081")
            .write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        XCTAssertTrue(try daemon.send(ControlRequest(command: .reload)).ok)
        try "pass in tcp to port 8080 frob\n".write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        XCTAssertFalse(try daemon.send(ControlRequest(command: .reload)).ok)
        kernel.enqueue([
            FakeKernelQueue.message(QueueWorkerTests.syn(port: 8080, from: 40004), id: 4),
            FakeKernelQueue.message(QueueWorkerTests.syn(port: 8081, from: 40005), id: 5),
        ])
        XCTAssertTrue(try daemon.eventually {
            try daemon.send(ControlRequest(command: .stats)).stats?.queues.first?.seen == 5
        })
        let stats = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.queues.first)
        XCTAssertEqual([stats.accepted, stats.dropped], [3, 2])
        XCTAssertEqual(try list(daemon, ConnectionFilter(sourcePort: 40005)).count, 1)
        XCTAssertEqual(try list(daemon, ConnectionFilter(sourcePort: 40004)).count, 0)
    }

    func testTheTableIsSavedAtTheStopAndRestoredAtTheNextStart() throws {
        let first = try startWithConnections(stateInterval: 0)
        XCTAssertEqual(first.stop(), 0)
        let second = try RunningDaemon(rules: Self.rules, stateInterval: 0, queues: [0], directory: first.directory)
        second.start()
        defer { XCTAssertEqual(second.stop(), 0) }
        XCTAssertEqual(try list(second).compactMap(\.orig.sport).sorted(), [40001, 40002])
        XCTAssertEqual(try second.send(ControlRequest(command: .stats)).stats?.queues.first?.seen, 0)
    }
}
