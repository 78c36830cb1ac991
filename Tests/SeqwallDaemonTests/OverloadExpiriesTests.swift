import SeqwallCore
@testable import SeqwallDaemon
import SeqwallTestSupport
import Testing

/// The deadlines of overload entries (OverloadExpiries): due ones come out earliest first and
/// exactly once, a later deadline replaces an earlier one, a cancelled entry never comes out.
@Suite("Overload expiries")
struct OverloadExpiriesTests {
    private func network(_ n: Int) -> IPNetwork {
        IPNetwork(address: IPAddress(ipv4: 0xC633_6400 | UInt32(n)), prefixLength: 32)
    }

    @Test func dueEntriesComeOutInOrderOnce() {
        var expiries = OverloadExpiries()
        var random = SplitMix64(seed: 7)
        var deadlines: [Int: UInt64] = [:]
        for n in 0..<200 {
            let deadline = 1_000 + random.next() % 10_000
            deadlines[n] = deadline
            expiries.schedule(network(n), in: "t", at: deadline)
        }
        #expect(expiries.count == 200)
        #expect(expiries.next == deadlines.values.min())
        var seen: [IPNetwork] = []
        var previous: UInt64 = 0
        for now in stride(from: UInt64(500), through: 12_000, by: 500) {
            let due = expiries.popDue(now: now)
            let dueDeadlines = due.map { deadlines[Int($0.network.address.low & 0xFF)]! }
            // Only those due since the last look, earliest first.
            #expect(dueDeadlines.allSatisfy { $0 <= now && $0 > previous })
            #expect(dueDeadlines == dueDeadlines.sorted())
            seen += due.map(\.network)
            previous = now
        }
        #expect(Set(seen).count == 200 && seen.count == 200)
        #expect(expiries.count == 0 && expiries.next == nil)
    }

    @Test func aLaterDeadlineWinsAndAnEarlierOneIsIgnored() {
        var expiries = OverloadExpiries()
        expiries.schedule(network(1), in: "t", at: 100)
        expiries.schedule(network(1), in: "t", at: 300)
        expiries.schedule(network(1), in: "t", at: 200)
        #expect(expiries.deadline(of: network(1), in: "t") == 300)
        // The same address in another table is another entry.
        expiries.schedule(network(1), in: "u", at: 150)
        #expect(expiries.count == 2)
        #expect(expiries.popDue(now: 250).map(\.table) == ["u"])
        #expect(expiries.popDue(now: 299).isEmpty)
        #expect(expiries.popDue(now: 300).map(\.network) == [network(1)])
    }

    @Test func aCancelledEntryNeverComesOut() {
        var expiries = OverloadExpiries()
        expiries.schedule(network(1), in: "t", at: 100)
        expiries.schedule(network(2), in: "t", at: 100)
        expiries.cancel(network(1), in: "t")
        #expect(expiries.count == 1)
        #expect(expiries.popDue(now: 1_000).map(\.network) == [network(2)])
        #expect(expiries.all.isEmpty)
    }
}
