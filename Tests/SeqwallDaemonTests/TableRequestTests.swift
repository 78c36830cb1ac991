import Foundation
import SeqwallControl
import SeqwallCore
import SeqwallTestSupport
@testable import SeqwallDaemon
import XCTest

/// `table`: show, add, delete, flush, replace and test one address table of the running
/// daemon, the workers' tables swapped without a reload; persist tables' changes kept across a
/// reload and, in the state file, a restart.
final class TableRequestTests: XCTestCase {
    static let rules = RunningDaemon.rules + """
        table <drop> { 198.51.100.0/24, !198.51.100.7 }
        table <seen> persist
        block in tcp from <drop>
        block in tcp from <seen>

        """

    private var daemons: [RunningDaemon] = []

    override func tearDown() {
        for daemon in daemons { XCTAssertEqual(daemon.stop(), 0) }
        daemons = []
    }

    private func started(stateInterval: UInt32? = nil, directory: String? = nil, rules: String = TableRequestTests.rules)
        throws -> RunningDaemon {
        let daemon = try RunningDaemon(rules: rules, stateInterval: stateInterval, queues: [0], directory: directory)
        daemon.start()
        daemons.append(daemon)
        return daemon
    }

    private func table(_ daemon: RunningDaemon, _ name: String, _ operation: TableOperation,
                       _ addresses: [String]? = nil, file: String? = nil) throws -> ControlReply {
        try daemon.send(ControlRequest(command: .table, table: TableRequest(name: name, operation: operation,
                                                                          addresses: addresses, file: file)))
    }

    /// Whether the queue's worker, as it decides packets, finds `address` in the table `name`.
    private func workerMatches(_ daemon: RunningDaemon, _ name: String, _ address: String) -> Bool {
        let worker = daemon.daemon.workers[0]
        return worker.mailbox.perform { worker in
            worker.tracker.policy.tables.first { $0.name == name }!.contains(ip(address))
        }
    }

    func testShowListsTheEntriesInCanonicalOrder() throws {
        let daemon = try started()
        let reply = try table(daemon, "drop", .show)
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(reply.entries, ["198.51.100.0/24", "!198.51.100.7"])
        XCTAssertEqual(reply.count, 2)
    }

    func testAddCountsTheNewEntriesAndTheWorkersMatchThemAtOnce() throws {
        let daemon = try started()
        XCTAssertFalse(workerMatches(daemon, "seen", "192.0.2.9"))
        let reply = try table(daemon, "seen", .add, ["192.0.2.9", "2001:db8::/48", "192.0.2.9"])
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(reply.count, 2)
        XCTAssertEqual(reply.message, "2/3 addresses added")
        XCTAssertTrue(workerMatches(daemon, "seen", "192.0.2.9"))
        XCTAssertTrue(workerMatches(daemon, "seen", "2001:db8::1"))
        XCTAssertEqual(try table(daemon, "seen", .add, ["192.0.2.9"]).count, 0)
    }

    func testDeleteRemovesOnlyEntriesWrittenTheSameWay() throws {
        let daemon = try started()
        let reply = try table(daemon, "drop", .delete, ["!198.51.100.7", "198.51.100.0/25"])
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(reply.message?.hasPrefix("1/2 addresses deleted"), true, reply.message ?? "")
        XCTAssertTrue(workerMatches(daemon, "drop", "198.51.100.7"))
        XCTAssertEqual(try table(daemon, "drop", .show).entries, ["198.51.100.0/24"])
    }

    func testAChangeToATableThatIsNotPersistSaysItIsLostAtTheNextReload() throws {
        let daemon = try started()
        let reply = try table(daemon, "drop", .add, ["192.0.2.1"])
        XCTAssertTrue(reply.message?.contains("<drop> is not persist") == true, reply.message ?? "")
        XCTAssertTrue(try daemon.send(ControlRequest(command: .reload)).ok)
        XCTAssertEqual(try table(daemon, "drop", .show).entries, ["198.51.100.0/24", "!198.51.100.7"])
        XCTAssertFalse(workerMatches(daemon, "drop", "192.0.2.1"))
    }

    func testFlushEmptiesTheTable() throws {
        let daemon = try started()
        let reply = try table(daemon, "drop", .flush)
        XCTAssertEqual(reply.count, 2)
        XCTAssertEqual(try table(daemon, "drop", .show).entries, [])
        XCTAssertFalse(workerMatches(daemon, "drop", "198.51.100.1"))
    }

    func testReplaceMakesTheTableHoldTheFilesEntries() throws {
        let daemon = try started()
        let file = daemon.directory + "/new.txt"
        try "# replacement\n198.51.100.0/24\n203.0.113.99\n".write(toFile: file, atomically: true, encoding: .utf8)
        let reply = try table(daemon, "drop", .replace, file: file)
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(reply.message?.hasPrefix("1 addresses added, 1 deleted"), true, reply.message ?? "")
        XCTAssertEqual(try table(daemon, "drop", .show).entries, ["198.51.100.0/24", "203.0.113.99"])
        XCTAssertTrue(workerMatches(daemon, "drop", "198.51.100.7"))
    }

    func testABadLineOfAReplacementFileIsNamedAndTheTableStays() throws {
        let daemon = try started()
        let file = daemon.directory + "/bad.txt"
        try "198.51.100.0/24\n198.51.100.300\n".write(toFile: file, atomically: true, encoding: .utf8)
        let reply = try table(daemon, "drop", .replace, file: file)
        XCTAssertFalse(reply.ok)
        XCTAssertTrue(reply.error?.hasPrefix("\(file):2:") == true, reply.error ?? "")
        XCTAssertEqual(try table(daemon, "drop", .show).entries, ["198.51.100.0/24", "!198.51.100.7"])
    }

    func testTestCountsTheMatchingAddresses() throws {
        let daemon = try started()
        let reply = try table(daemon, "drop", .test, ["198.51.100.1", "198.51.100.7", "2001:db8::1"])
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(reply.count, 1)
        XCTAssertEqual(reply.message, "1/3 addresses match")
        XCTAssertFalse(try table(daemon, "drop", .test, ["198.51.100.0/24"]).ok)
    }

    func testAnUnknownTableAndABadAddressAreRefusedWithWhereTheyAre() throws {
        let daemon = try started()
        let unknown = try table(daemon, "nosuch", .show)
        XCTAssertFalse(unknown.ok)
        XCTAssertEqual(unknown.error, "no table <nosuch> in the rules in force (tables: <drop>, <seen>)")
        let bad = try table(daemon, "seen", .add, ["192.0.2.1", "192.0.2.x"])
        XCTAssertFalse(bad.ok)
        XCTAssertTrue(bad.error?.hasPrefix("address 2:1:") == true, bad.error ?? "")
        XCTAssertEqual(try table(daemon, "seen", .show).entries, [])
        XCTAssertFalse(try table(daemon, "seen", .add, []).ok)
        let missing = try daemon.send(ControlRequest(command: .table))
        XCTAssertFalse(missing.ok)
    }

    func testCountsAppearInStatsRulesAndMetrics() throws {
        let daemon = try started()
        _ = try table(daemon, "seen", .add, ["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        let expected = [TableSummary(name: "drop", persist: false, entries: 2), TableSummary(name: "seen", persist: true, entries: 3)]
        XCTAssertEqual(try daemon.send(ControlRequest(command: .stats)).stats?.tables, expected)
        XCTAssertEqual(try daemon.send(ControlRequest(command: .rules)).rules?.tables, expected)
        let metrics = DaemonStatistics(daemon: daemon.daemon).metricsText()
        XCTAssertTrue(metrics.contains("seqwall_table_entries{table=\"seen\"} 3\n"), metrics)
        XCTAssertTrue(metrics.contains("seqwall_table_entries{table=\"drop\"} 2\n"), metrics)
    }

    func testAReloadKeepsAPersistTablesChangesOnTopOfTheEditedFile() throws {
        let daemon = try started()
        _ = try table(daemon, "seen", .add, ["192.0.2.1", "192.0.2.2"])
        _ = try table(daemon, "seen", .delete, ["192.0.2.2"])
        let edited = TableRequestTests.rules.replacingOccurrences(of: "table <seen> persist",
                                                                  with: "table <seen> persist { 203.0.113.50, 192.0.2.3 }")
        try edited.write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        _ = try table(daemon, "seen", .delete, ["192.0.2.3"]) // not in the table yet: no change
        XCTAssertTrue(try daemon.send(ControlRequest(command: .reload)).ok)
        XCTAssertEqual(try table(daemon, "seen", .show).entries, ["192.0.2.1", "192.0.2.3", "203.0.113.50"])
        XCTAssertTrue(workerMatches(daemon, "seen", "192.0.2.1"))
    }

    func testAPersistTablesChangesSurviveARestartWithTheStateFile() throws {
        let first = try started(stateInterval: 3600)
        _ = try table(first, "seen", .add, ["192.0.2.1", "2001:db8::/32"])
        _ = try table(first, "drop", .add, ["192.0.2.200"])
        XCTAssertEqual(first.stop(), 0)
        daemons.removeAll()
        let second = try started(stateInterval: 3600, directory: first.directory)
        XCTAssertEqual(try table(second, "seen", .show).entries, ["192.0.2.1", "2001:db8::/32"])
        XCTAssertEqual(try table(second, "drop", .show).entries, ["198.51.100.0/24", "!198.51.100.7"])
        XCTAssertTrue(workerMatches(second, "seen", "2001:db8::5"))
        // Stopped while the first, which owns the directory, is still there.
        XCTAssertEqual(second.stop(), 0)
        daemons.removeAll()
        withExtendedLifetime(first) {}
    }
}
