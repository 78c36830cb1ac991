import Foundation
@testable import SeqwallControl
import SeqwallCore
import Testing

@Suite("address tables in stats and rules show")
struct TableSummaryTextTests {
    let tables = [TableSummary(name: "drop", persist: false, entries: 100_000),
                  TableSummary(name: "bruteforce", persist: true, entries: 1)]

    @Test("stats names each table with its entry count; JSON carries them; none without tables")
    func statsLines() throws {
        var stats = StatsRecord(queues: [.init(queue: 0, counters: TrackerCounters(), connections: 0, halfOpen: 0,
                                               connectionLimit: 10, enobufs: 0, kernel: nil)])
        func tableLines() -> [Substring] { Formatters.statsText(stats).split(separator: "\n").filter { $0.hasPrefix("table ") } }
        #expect(tableLines().isEmpty)
        stats.tables = tables
        let lines = tableLines()
        #expect(lines == ["table        <drop>  # 100000 entries", "table        <bruteforce> persist  # 1 entry"])
        let decoded = try JSONDecoder().decode(StatsRecord.self, from: JSONEncoder().encode(stats))
        #expect(decoded.tables == tables)
    }

    @Test("rules show lists the tables after inside")
    func rulesLines() {
        var record = RulesRecord(file: "/etc/seqwall/seqwall.rules", loaded_at: 0, inside: ["203.0.113.0/24"],
                                 defaults: [], rules: [], limits: .init(states: 10, half_open: nil, half_open_per_source: nil, syn_rate_per_source: nil, syn_rate_burst: nil), timeouts: [], pickup: false,
                                 drop_log: "off")
        record.tables = tables
        let lines = Formatters.rulesText(record).split(separator: "\n")
        #expect(Array(lines[1...3]) == ["inside 203.0.113.0/24", "table <drop>  # 100000 entries",
                                         "table <bruteforce> persist  # 1 entry"])
    }
}
