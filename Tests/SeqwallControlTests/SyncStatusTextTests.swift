import Foundation
import SeqwallControl
import Testing

// `seqwall sync status`'s text and JSON (Formatters.syncText, SyncStatus).
@Suite struct SyncStatusTextTests {
    @Test func theFirstLineSaysWhetherThisNodeCanTakeOver() throws {
        var status = SyncStatus()
        status.peer = "192.0.2.2:7946"
        status.listen = "192.0.2.1:7946"
        status.peer_alive = true
        status.last_heard_ms = 12
        status.bulk_progress = 800
        status.refused = ["authentication": 3, "replay": 1]
        let text = Formatters.syncText(status)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "peer 192.0.2.2:7946 (listening on 192.0.2.1:7946): NOT in sync, alive, last heard 12 ms ago")
        #expect(lines[1] == "bulk from the peer: 800 records so far")
        #expect(lines.last == "refused: 3 authentication, 1 replay")
        status.in_sync = true
        status.bulk_progress = nil
        status.peer_alive = false
        status.last_heard_ms = nil
        status.refused = [:]
        let again = Formatters.syncText(status).split(separator: "\n").map(String.init)
        #expect(again[0] == "peer 192.0.2.2:7946 (listening on 192.0.2.1:7946): in sync, down, never heard")
        #expect(again.last == "refused: none")

        let json = try JSONEncoder().encode(status)
        #expect(try JSONDecoder().decode(SyncStatus.self, from: json) == status)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        #expect(object["in_sync"] as? Bool == true)
    }
}
