import Foundation
import SeqwallControl
@testable import SeqwallDaemon
import XCTest

/// `reload`: a good rule file replaces the policy; a broken one is refused with the place of
/// each error, and the policy in force stays.
final class ReloadTests: RunningDaemonTestCase {
    func testAGoodRuleFileReplacesThePolicy() throws {
        try (RunningDaemon.rules + "pass in udp to port 53\nblock in tcp to port 23\n")
            .write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        let reply = try daemon.send(ControlRequest(command: .reload))
        XCTAssertTrue(reply.ok, reply.error ?? "")
        let rules = try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules)
        XCTAssertEqual(rules.rules.count, 3)
        XCTAssertEqual(rules.rules.last?.location, "\(daemon.rulesPath):6:1")
        let reload = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.last_reload)
        XCTAssertTrue(reload.ok)
        XCTAssertNil(reload.error)
    }

    func testAReloadReportsATableNoRuleUsesAndStillLoads() throws {
        try (RunningDaemon.rules + "table <spare> { 192.0.2.0/24 }\n")
            .write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        let reply = try daemon.send(ControlRequest(command: .reload))
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(reply.message, "reloaded \(daemon.rulesPath)\n"
                       + "\(daemon.rulesPath):5:1: warning: table <spare> is defined but no rule uses it")
        let rules = try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules)
        XCTAssertEqual(rules.tables?.map(\.name), ["spare"])
    }

    func testTheMetricsCountReloadsByResult() throws {
        let statistics = DaemonStatistics(daemon: daemon.daemon)
        XCTAssertTrue(statistics.metricsText().contains("seqwall_last_reload_success 1\n"))
        XCTAssertTrue(try daemon.send(ControlRequest(command: .reload)).ok)
        try "default in frob\n".write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        XCTAssertFalse(try daemon.send(ControlRequest(command: .reload)).ok)
        XCTAssertFalse(try daemon.send(ControlRequest(command: .reload)).ok)
        let text = statistics.metricsText()
        XCTAssertTrue(text.contains("seqwall_reloads_total{result=\"success\"} 1\n"), text)
        XCTAssertTrue(text.contains("seqwall_reloads_total{result=\"failure\"} 2\n"), text)
        XCTAssertTrue(text.contains("seqwall_last_reload_success 0\n"), text)
    }

    func testABrokenRuleFileIsRefusedAndThePolicyStays() throws {
        let before = try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules)
        try (RunningDaemon.rules + "pass in tcp to port 80 frob\n")
            .write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        let reply = try daemon.send(ControlRequest(command: .reload))
        XCTAssertFalse(reply.ok)
        XCTAssertTrue(reply.error?.hasPrefix("\(daemon.rulesPath):5:24: ") == true, reply.error ?? "no error")
        let after = try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules)
        XCTAssertEqual(after, before)
        let reload = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.last_reload)
        XCTAssertFalse(reload.ok)
        XCTAssertTrue(reload.error?.contains(":5:24:") == true, reload.error ?? "no error")
    }

    /// Queues bound for the headers only cannot send a proxied packet back whole: a reload that
    /// brings the first `synproxy` rule is refused, with the rule's place, rather than run.
    func testASynProxyRuleIsRefusedOnQueuesThatDoNotCopyWholePackets() throws {
        let before = try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules)
        try (RunningDaemon.rules + "pass in tcp to port 80 synproxy\n")
            .write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        let reply = try daemon.send(ControlRequest(command: .reload))
        XCTAssertFalse(reply.ok)
        XCTAssertTrue(reply.error?.hasPrefix("\(daemon.rulesPath):5:1: 'synproxy'") == true, reply.error ?? "no error")
        XCTAssertEqual(try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules), before)
    }
}
