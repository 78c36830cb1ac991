import CNetfilterQueue
import Foundation
import SeqwallControl
import SeqwallCore
import SeqwallTestSupport
@testable import SeqwallDaemon
import XCTest

/// Automatic blocking in the running daemon, on a fake kernel queue: a source over `limit conn`
/// ends up in its overload table through the live table path, its connections through that
/// rule are flushed, and the entry goes at its `expire` deadline, across a restart too.
final class OverloadDaemonTests: XCTestCase {
    static let rules = """
        default in block
        default out pass
        table <bruteforce> persist
        block in tcp from <bruteforce>
        pass in tcp to port 22 limit conn 2 per-source overload <bruteforce> expire 2s flush
        pass in tcp to port 80
        set pickup grace 0

        """

    private static let family = Family.ipv4

    /// One segment of a connection between the lab client's `port` and the server's `serverPort`,
    /// as a netlink message for the host-mode hook its direction takes.
    private static func message(_ fromClient: Bool, _ flags: TCPFlags, port: UInt16, serverPort: UInt16,
                                seq: UInt32, ack: UInt32, id: UInt32) -> [UInt8] {
        var builder = PacketBuilder(source: fromClient ? family.client : family.server,
                                    destination: fromClient ? family.server : family.client)
        builder.sourcePort = fromClient ? port : serverPort
        builder.destinationPort = fromClient ? serverPort : port
        builder.flags = flags
        builder.sequence = seq
        builder.acknowledgment = ack
        return FakeKernelQueue.message(builder.build(), id: id,
                                       hook: fromClient ? NF_INET_LOCAL_IN.rawValue : NF_INET_LOCAL_OUT.rawValue)
    }

    /// SYN, SYN-ACK and the completing ACK from the client's `port`.
    private static func handshake(port: UInt16, serverPort: UInt16, firstID: UInt32) -> [[UInt8]] {
        [message(true, .syn, port: port, serverPort: serverPort, seq: 1000, ack: 0, id: firstID),
         message(false, [.syn, .ack], port: port, serverPort: serverPort, seq: 5000, ack: 1001, id: firstID + 1),
         message(true, .ack, port: port, serverPort: serverPort, seq: 1001, ack: 5001, id: firstID + 2)]
    }

    private func show(_ daemon: RunningDaemon) throws -> [String] {
        try daemon.send(ControlRequest(command: .table, table: TableRequest(name: "bruteforce", operation: .show))).entries ?? []
    }

    private func connections(_ daemon: RunningDaemon) throws -> [ConnectionRecord] {
        var records: [ConnectionRecord] = []
        _ = try ControlClient(path: daemon.controlPath).send(ControlRequest(command: .list)) { records.append($0) }
        return records
    }

    func testASourceOverTheLimitIsBlockedFlushedAndLetGoAtItsDeadline() throws {
        let daemon = try RunningDaemon(rules: Self.rules, queues: [0])
        daemon.start()
        defer { XCTAssertEqual(daemon.stop(), 0) }
        let kernel = try XCTUnwrap(daemon.kernels[0])
        // Two connections to port 22 and one to port 80, then a third to port 22.
        kernel.enqueue(Self.handshake(port: 40001, serverPort: 22, firstID: 1)
            + Self.handshake(port: 40002, serverPort: 22, firstID: 4)
            + Self.handshake(port: 40010, serverPort: 80, firstID: 7)
            + Self.handshake(port: 40003, serverPort: 22, firstID: 10))
        XCTAssertTrue(try daemon.eventually { try daemon.send(ControlRequest(command: .stats)).stats?.packets.seen == 12 })
        let stats = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats)
        XCTAssertEqual(stats.drops["conn-limit"], 1)
        XCTAssertEqual(stats.packets.dropped, 1)

        // The daemon adds the source within its interval, then flushes its port-22 connections.
        XCTAssertTrue(try daemon.eventually(10) { try show(daemon).count == 1 })
        let line = try XCTUnwrap(try show(daemon).first)
        XCTAssertTrue(line.hasPrefix("198.51.100.10  # overload, expires "), line)
        XCTAssertTrue(try daemon.eventually(10) { try connections(daemon).count == 1 })
        XCTAssertEqual(try connections(daemon).first?.orig.dport, 80)
        let overload = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.overload)
        XCTAssertEqual([overload.sources, overload.added, overload.flushed, overload.expired], [1, 1, 2, 0])
        XCTAssertEqual(overload.pending_expiries, 1)
        let metrics = DaemonStatistics(daemon: daemon.daemon).metricsText()
        XCTAssertTrue(metrics.contains("seqwall_overloads_total{queue=\"0\"} 1\n"), metrics)
        XCTAssertTrue(metrics.contains("seqwall_overload_flushed_connections_total 2\n"), metrics)
        XCTAssertTrue(metrics.contains("seqwall_drops_total{queue=\"0\",reason=\"conn-limit\"} 1\n"), metrics)

        // Blocked: the next SYN, to any port.
        kernel.enqueue([Self.message(true, .syn, port: 40020, serverPort: 80, seq: 1000, ack: 0, id: 20)])
        XCTAssertTrue(try daemon.eventually { try daemon.send(ControlRequest(command: .stats)).stats?.drops["rule"] == 1 })

        // At the deadline the entry goes through the live path, and the source may connect.
        XCTAssertTrue(try daemon.eventually(10) { try show(daemon).isEmpty })
        let after = try XCTUnwrap(try daemon.send(ControlRequest(command: .stats)).stats?.overload)
        XCTAssertEqual([after.expired, UInt64(after.pending_expiries)], [1, 0])
        kernel.enqueue([Self.message(true, .syn, port: 40021, serverPort: 80, seq: 1000, ack: 0, id: 21)])
        XCTAssertTrue(try daemon.eventually { try daemon.send(ControlRequest(command: .stats)).stats?.packets.seen == 14 })
        XCTAssertEqual(try daemon.send(ControlRequest(command: .stats)).stats?.drops["rule"], 1)
    }

    func testADeadlineSurvivesARestartWithTheStateFile() throws {
        let rules = Self.rules.replacingOccurrences(of: "expire 2s", with: "expire 1h")
        let first = try RunningDaemon(rules: rules, stateInterval: 3600, queues: [0])
        first.start()
        let kernel = try XCTUnwrap(first.kernels[0])
        kernel.enqueue((0..<3).flatMap { Self.handshake(port: 40001 + UInt16($0), serverPort: 22, firstID: UInt32(1 + 3 * $0)) })
        XCTAssertTrue(try first.eventually(10) { try show(first).count == 1 })
        // A hand-added entry has no deadline and keeps none.
        XCTAssertTrue(try first.send(ControlRequest(command: .table, table: TableRequest(
            name: "bruteforce", operation: .add, addresses: ["192.0.2.7"]))).ok)
        XCTAssertEqual(first.stop(), 0)
        let saved = try String(contentsOfFile: first.statePath + ".expiries", encoding: .utf8)
        XCTAssertTrue(saved.hasPrefix("bruteforce 198.51.100.10 "), saved)
        XCTAssertEqual(saved.split(separator: "\n").count, 1)

        // Restarted on the same state file, with the deadline moved into the past: the entry
        // is deleted at the first look; the hand-added one stays.
        let past = "bruteforce 198.51.100.10 \(UInt64(Date().timeIntervalSince1970) - 5)\n"
        try past.write(toFile: first.statePath + ".expiries", atomically: true, encoding: .utf8)
        let second = try RunningDaemon(rules: rules, stateInterval: 3600, queues: [0], directory: first.directory)
        second.start()
        defer { XCTAssertEqual(second.stop(), 0) }
        XCTAssertTrue(try second.eventually(10) { try show(second) == ["192.0.2.7"] })
        XCTAssertEqual(try second.send(ControlRequest(command: .stats)).stats?.overload?.expired, 1)
    }
}
