import Foundation
import SeqwallControl
@testable import SeqwallDaemon
import XCTest

/// What each queue is bound with for the SYN proxy (Daemon+SynProxy.swift, docs/synproxy.md):
/// with `--synproxy-queue`, only the named queues copy whole packets (GSO off) and proxy; the
/// others keep the normal copy range and GSO; without it, every queue copies whole packets when
/// the policy starts with a `synproxy` rule. And what a reload may then bring.
final class SynProxyQueueTests: XCTestCase {
    static let synProxyRules = RunningDaemon.rules + "pass in tcp to port 80 synproxy\n"

    func start(rules: String, synProxyQueues: [UInt16]) throws -> RunningDaemon {
        let daemon = try RunningDaemon(rules: rules, queues: [0, 1, 2], synProxyQueues: synProxyQueues)
        daemon.start()
        addTeardownBlock { XCTAssertEqual(daemon.stop(), 0) }
        return daemon
    }

    func assertBound(_ daemon: RunningDaemon, wholeOn whole: Set<UInt16>, proxyingOn proxying: Set<UInt16>,
                     file: StaticString = #filePath, line: UInt = #line) {
        let bound = daemon.boundSettings
        XCTAssertEqual(Set(bound.keys), [0, 1, 2], file: file, line: line)
        for (queue, settings) in bound {
            let copiesWhole = whole.contains(queue)
            XCTAssertEqual(settings.copyRange, copiesWhole ? QueueSettings.wholePacket : 256, "queue \(queue)",
                           file: file, line: line)
            XCTAssertEqual(settings.offloadsWhole, !copiesWhole, "queue \(queue): GSO", file: file, line: line)
            XCTAssertEqual(settings.proxiesSynProxyRules, proxying.contains(queue), "queue \(queue): proxies",
                           file: file, line: line)
        }
        for worker in daemon.daemon.workers {
            XCTAssertEqual(worker.mailbox.perform { $0.tracker.proxiesSynProxyRules }, proxying.contains(worker.queue),
                           "queue \(worker.queue): the tracker", file: file, line: line)
        }
    }

    func testOnlyTheSynProxyQueuesCopyWholePackets() throws {
        let daemon = try start(rules: Self.synProxyRules, synProxyQueues: [1])
        assertBound(daemon, wholeOn: [1], proxyingOn: [1])
    }

    func testWithoutSynProxyQueuesEveryQueueCopiesWholePacketsForASynProxyPolicy() throws {
        let daemon = try start(rules: Self.synProxyRules, synProxyQueues: [])
        assertBound(daemon, wholeOn: [0, 1, 2], proxyingOn: [0, 1, 2])
    }

    func testWithoutSynProxyRulesOrQueuesNoQueueCopiesWholePackets() throws {
        let daemon = try start(rules: RunningDaemon.rules, synProxyQueues: [])
        assertBound(daemon, wholeOn: [], proxyingOn: [0, 1, 2])
    }

    /// The synproxy queues copy whole packets from the start, so the first `synproxy` rule may
    /// come with a reload.
    func testWithSynProxyQueuesAReloadMayBringTheFirstSynProxyRule() throws {
        let daemon = try start(rules: RunningDaemon.rules, synProxyQueues: [2])
        assertBound(daemon, wholeOn: [2], proxyingOn: [2])
        try Self.synProxyRules.write(toFile: daemon.rulesPath, atomically: true, encoding: .utf8)
        let reply = try daemon.send(ControlRequest(command: .reload))
        XCTAssertTrue(reply.ok, reply.error ?? "")
        XCTAssertEqual(try XCTUnwrap(try daemon.send(ControlRequest(command: .rules)).rules).rules.count, 2)
        assertBound(daemon, wholeOn: [2], proxyingOn: [2])
    }

    func testTheSynProxyQueuesAreBoundBesideTheQueuesGiven() {
        var options = DaemonOptions(rulesPath: "/dev/null")
        options.bindQueues([], synProxyQueues: [1])
        XCTAssertEqual(options.queues, [0, 1])
        options.bindQueues([3, 4], synProxyQueues: [4, 5])
        XCTAssertEqual(options.queues, [3, 4, 5])
        XCTAssertEqual(options.synProxyQueues, [4, 5])
        options.bindQueues([], synProxyQueues: [])
        XCTAssertEqual(options.queues, [0])
        XCTAssertEqual(options.synProxyQueues, [])
    }
}
