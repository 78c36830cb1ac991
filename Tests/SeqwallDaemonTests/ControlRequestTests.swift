import Foundation
import SeqwallControl
@testable import SeqwallDaemon
import XCTest

/// Control requests through a real control socket, and the replies to requests it refuses:
/// each refusal says why, and the server goes on answering.
final class ControlRequestTests: RunningDaemonTestCase {
    func testStatsDescribesTheDaemon() throws {
        let reply = try daemon.send(ControlRequest(command: .stats))
        XCTAssertTrue(reply.ok, reply.error ?? "")
        let stats = try XCTUnwrap(reply.stats)
        XCTAssertEqual(stats.queues.count, 0)
        XCTAssertNotNil(stats.uptime_seconds)
        XCTAssertNil(stats.last_reload)
        XCTAssertNil(stats.state_file)
    }

    func testConntrackRequestsOnAnEmptyTable() throws {
        var listed = 0
        let list = try ControlClient(path: daemon.controlPath).send(ControlRequest(command: .list)) { _ in listed += 1 }
        XCTAssertEqual(list, ControlReply(ok: true, count: 0))
        XCTAssertEqual(listed, 0)
        let filter = ConnectionFilter(proto: "tcp", source: "192.0.2.1", destinationPort: 22)
        XCTAssertEqual(try daemon.send(ControlRequest(command: .count, filter: filter)), ControlReply(ok: true, count: 0))
        XCTAssertEqual(try daemon.send(ControlRequest(command: .delete, filter: filter)), ControlReply(ok: true, count: 0))
        XCTAssertEqual(try daemon.send(ControlRequest(command: .flush)), ControlReply(ok: true, count: 0))
    }

    func testRulesShowsThePolicyInForce() throws {
        let reply = try daemon.send(ControlRequest(command: .rules))
        let rules = try XCTUnwrap(reply.rules)
        XCTAssertEqual(rules.file, daemon.rulesPath)
        XCTAssertEqual(rules.rules.count, 1)
        XCTAssertEqual(rules.defaults.map(\.text), ["default in block", "default out pass"])
    }

    func testABadFilterIsRefusedWithTheReason() throws {
        let reply = try daemon.send(ControlRequest(command: .list, filter: ConnectionFilter(proto: "sctp")))
        XCTAssertFalse(reply.ok)
        XCTAssertTrue(reply.error?.contains("sctp") == true, reply.error ?? "no error")
        XCTAssertTrue(try daemon.send(ControlRequest(command: .ping)).ok)
    }

    func testUnknownEventNamesAreRefused() throws {
        let reply = try daemon.send(ControlRequest(command: .watch, events: ["teleport"]))
        XCTAssertFalse(reply.ok)
        XCTAssertTrue(reply.error?.contains("teleport") == true, reply.error ?? "no error")
    }

    func testAnUnknownCommandIsRefusedAndTheServerCarriesOn() throws {
        let reply = try daemon.exchange(raw: Array("{\"command\":\"frobnicate\"}\n".utf8))
        XCTAssertFalse(reply.ok)
        XCTAssertTrue(reply.error?.hasPrefix("bad request: expected {\"command\": one of ping, stats") == true, reply.error ?? "no error")
        XCTAssertEqual(try daemon.send(ControlRequest(command: .ping)).message, "pong")
    }

    func testAMalformedRequestIsRefusedAndTheServerCarriesOn() throws {
        for line in ["not json at all\n", "{\"command\":\n", "[1,2,3]\n", "\n"] {
            let reply = try daemon.exchange(raw: Array(line.utf8))
            XCTAssertFalse(reply.ok, line)
            XCTAssertFalse(reply.error?.isEmpty ?? true, line)
        }
        XCTAssertEqual(try daemon.send(ControlRequest(command: .ping)).message, "pong")
    }

    func testAnOversizedRequestIsRefusedAndTheServerCarriesOn() throws {
        let bytes = [UInt8](repeating: UInt8(ascii: "a"), count: ControlLimits.maximumRequestBytes + 8192)
        let reply = try daemon.exchange(raw: bytes)
        XCTAssertEqual(reply, ControlReply.failure(ControlRequestError.tooLong.description))
        XCTAssertEqual(try daemon.send(ControlRequest(command: .ping)).message, "pong")
    }
}
