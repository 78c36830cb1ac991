import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// Live table changes (AddressTable's adding/removing, TableChanges) and their place in the
// state file: a round trip, an old file without a table section, and corrupt sections refused.

private let wallTime: UInt64 = 1_700_000_000 * 1_000_000_000

private func entry(_ text: String, prefix: Int? = nil, negated: Bool = false) -> TableEntry {
    let address = ip(text)
    return TableEntry(IPNetwork(address: address, prefixLength: prefix ?? (address.isIPv4 ? 32 : 128)), negated: negated)
}

@Suite struct TableChangesTests {
    let definition = AddressTable(name: "drop", persist: true,
                                  entries: [entry("198.51.100.0", prefix: 24), entry("198.51.100.7", negated: true)])

    @Test func addingAndRemovingCountOnlyWhatChanged() {
        let (added, addedCount) = definition.adding([entry("192.0.2.1"), entry("198.51.100.0", prefix: 24)])
        #expect(addedCount == 1)
        #expect(added.contains(ip("192.0.2.1")) && !definition.contains(ip("192.0.2.1")))
        let (removed, removedCount) = added.removing([entry("198.51.100.7", negated: true), entry("203.0.113.1")])
        #expect(removedCount == 1)
        #expect(removed.contains(ip("198.51.100.7")))
        #expect(definition.adding([]).table === definition)
    }

    @Test func changesAppliedToTheDefinitionGiveTheLiveTable() {
        let live = definition.adding([entry("2001:db8::", prefix: 48)]).table
            .removing([entry("198.51.100.7", negated: true)]).table
        let changes = TableChanges(from: definition, to: live)
        #expect(changes.added == [entry("2001:db8::", prefix: 48)])
        #expect(changes.deleted == [entry("198.51.100.7", negated: true)])
        #expect(changes.applied(to: definition) == live)
        // An edited definition: the file's new entry and the run-time changes both hold.
        let edited = definition.withEntries(definition.entries + [entry("203.0.113.5")])
        #expect(changes.applied(to: edited).entries
                == [entry("198.51.100.0", prefix: 24), entry("203.0.113.5"), entry("2001:db8::", prefix: 48)])
    }

    @Test func theStateFileKeepsEveryTablesChanges() throws {
        var encoder = StateSnapshot.Encoder(wallTime: wallTime, monotonicNow: 5)
        let changes = [
            "seen": TableChanges(added: [entry("192.0.2.1"), entry("2001:db8::", prefix: 32), entry("192.0.2.0", prefix: 28, negated: true)],
                                 deleted: [entry("203.0.113.0", prefix: 24)]),
            "bruteforce": TableChanges(added: [entry("198.51.100.9")], deleted: []),
            "unchanged": TableChanges(added: [], deleted: []),
        ]
        encoder.tables = changes
        let bytes = encoder.finish()
        let loaded = try StateSnapshot.decode(bytes, maximumRecords: 0, wallNow: wallTime, monotonicNow: 9)
        #expect(loaded.tables == changes.filter { !$0.value.isEmpty })
        #expect(loaded.entries.isEmpty)
    }

    @Test func aFileWithoutATableSectionLoadsWithNoChanges() throws {
        var encoder = StateSnapshot.Encoder(wallTime: wallTime, monotonicNow: 5)
        let bytes = encoder.finish()
        #expect(bytes.count == StateSnapshot.headerLength)
        #expect(bytes[32..<40].allSatisfy { $0 == 0 })
        #expect(try StateSnapshot.decode(bytes, maximumRecords: 0, wallNow: wallTime, monotonicNow: 9).tables.isEmpty)
    }

    @Test func aDamagedTableSectionIsRefused() throws {
        var encoder = StateSnapshot.Encoder(wallTime: wallTime, monotonicNow: 5)
        encoder.tables = ["seen": TableChanges(added: [entry("192.0.2.1")], deleted: [])]
        let good = encoder.finish()
        // A prefix length an IPv4 address cannot have, with the checksum made right again.
        var badPrefix = good
        badPrefix[badPrefix.count - 2] = 33
        StateSnapshot.store32(StateSnapshot.checksum(of: badPrefix), at: 44, in: &badPrefix)
        #expect(throws: StateSnapshot.DecodeError.self) {
            try StateSnapshot.decode(badPrefix, maximumRecords: 0, wallNow: wallTime, monotonicNow: 9)
        }
        // A section cut short, its length in the header shortened to match.
        var cut = Array(good.dropLast(5))
        StateSnapshot.store32(UInt32(cut.count - StateSnapshot.headerLength), at: 32, in: &cut)
        StateSnapshot.store32(StateSnapshot.checksum(of: cut), at: 44, in: &cut)
        #expect(throws: StateSnapshot.DecodeError.self) {
            try StateSnapshot.decode(cut, maximumRecords: 0, wallNow: wallTime, monotonicNow: 9)
        }
        // Any byte changed without the checksum: refused.
        var flipped = good
        flipped[StateSnapshot.headerLength + 4] ^= 1
        #expect(throws: StateSnapshot.DecodeError.badChecksum) {
            try StateSnapshot.decode(flipped, maximumRecords: 0, wallNow: wallTime, monotonicNow: 9)
        }
    }
}
