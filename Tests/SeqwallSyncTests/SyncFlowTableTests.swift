import SeqwallCore
@testable import SeqwallSync
import SeqwallTestSupport
import XCTest

/// The coalescer's table (SyncFlowTable) against a Dictionary, operation by operation.
final class SyncFlowTableTests: XCTestCase {
    /// Keys from a small space, so that the same ones come back, are removed and inserted again,
    /// both orientations of one flow (the same hash) included.
    static func key(_ generator: inout SplitMix64, space: UInt64) -> FlowKey {
        let value = generator.next() % space
        let family: Family = value % 3 == 0 ? .ipv6 : .ipv4
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: UInt16(value / 4),
                          destinationPort: 443, protocolNumber: value % 5 == 0 ? TrackedProtocol.udpNumber : TrackedProtocol.tcpNumber)
        return value % 2 == 0 ? key : key.reversed
    }

    /// A turn's changes given at once (their keys touched first) do what they do one by one.
    func testATurnsChangesAtOnceActAsOneByOne() {
        var generator = SplitMix64(seed: 9)
        var batched = SyncCoalescer(interval: 50, maximumChanges: 4)
        var single = SyncCoalescer(interval: 50, maximumChanges: 4)
        var now: UInt64 = 0
        for _ in 0..<300 {
            now += 10
            let changes = (0..<Int(generator.next() % 40)).map { _ -> SyncChange in
                var connection = SyncTestPair.connection(port: UInt16(generator.next() % 200), now: now)
                connection.packetsReply = generator.next() % 3
                let kinds: [SyncChange.Kind] = [.changed, .changed, .removed, .refresh]
                return SyncChange(kinds[Int(generator.next() % 4)], connection)
            }
            batched.add(contentsOf: changes, now: now)
            for change in changes { single.add(change, now: now) }
            XCTAssertEqual(batched.take(now: now), single.take(now: now))
            XCTAssertEqual(batched.pendingCount, single.pendingCount)
        }
    }

    func testEveryOperationAgreesWithADictionary() {
        for (seed, space) in [(UInt64(1), UInt64(40)), (2, 700), (3, 20_000)] {
            var generator = SplitMix64(seed: seed)
            var table = SyncFlowTable<Int>(capacity: 4, placeholder: -1)
            var reference: [FlowKey: Int] = [:]
            for step in 0..<60_000 {
                let key = Self.key(&generator, space: space)
                switch generator.next() % 8 {
                case 0, 1, 2:
                    let position = table.findOrInsert(key, step)
                    XCTAssertEqual(table.key(at: position), key)
                    if reference[key] == nil { reference[key] = step }
                    XCTAssertEqual(table[position], reference[key])
                    table[position] += 1
                    reference[key]! += 1
                case 3, 4, 5:
                    XCTAssertEqual(table.remove(key), reference.removeValue(forKey: key), "seed \(seed), step \(step)")
                case 6:
                    XCTAssertEqual(table.find(key).map { table[$0] }, reference[key])
                default:
                    if step % 1000 == 7 {
                        // Now and then a pass that removes a part and changes the rest.
                        let cut = Int(generator.next() % 4)
                        table.update { value in
                            value += 10
                            return value % 4 != cut
                        }
                        reference = reference.mapValues { $0 + 10 }.filter { $0.value % 4 != cut }
                    }
                }
                XCTAssertEqual(table.count, reference.count)
            }
            // Every key the dictionary holds is found, and nothing else.
            for (key, value) in reference { XCTAssertEqual(table.find(key).map { table[$0] }, value) }
            let all = table.all
            XCTAssertEqual(all.count, reference.count)
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0.value) }), reference)
            XCTAssertEqual(table.contains { $0 == -5 }, reference.values.contains(-5))
            if let some = reference.first {
                XCTAssertTrue(table.contains { $0 == some.value })
            }
        }
    }
}

/// The coalescer's position is one cache line: tag, key and what is known (SyncFlowTable).
final class SyncFlowTableLayoutTests: XCTestCase {
    func testTheCoalescersPositionIsOneCacheLine() {
        XCTAssertEqual(MemoryLayout<SyncCoalescer.Known>.size, 16)
        XCTAssertEqual(MemoryLayout<SyncFlowTable<SyncCoalescer.Known>.Entry>.stride, 64)
    }

    /// A table of a huge page or more takes its positions from the regions it is given (the
    /// daemon's huge pages) and gives them back when it grows and when it goes; a smaller one
    /// takes them from the heap.
    func testALargeTableTakesItsPositionsFromItsRegions() {
        final class Counts: @unchecked Sendable {
            var allocated: [Int] = []
            var released: [Int] = []
        }
        let counts = Counts()
        let regions = RegionProvider(allocate: { byteCount in
            counts.allocated.append(byteCount)
            return UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: ConnectionTable.hugePageBytes)
        }, release: { start, byteCount in
            counts.released.append(byteCount)
            start.deallocate()
        })
        let huge = ConnectionTable.hugePageBytes, keys = huge / 64 / 2
        let key = { (index: Int) in
            FlowKey(source: Family.ipv4.client, destination: Family.ipv4.server, sourcePort: UInt16(index),
                    destinationPort: 443, protocolNumber: TrackedProtocol.tcpNumber)
        }
        do {
            _ = SyncFlowTable(capacity: 16, placeholder: SyncCoalescer.Known(), regions: regions)
            var table = SyncFlowTable(capacity: keys, placeholder: SyncCoalescer.Known(), regions: regions)
            XCTAssertEqual(counts.allocated, [huge], "the small table's positions came from the regions")
            for index in 0...keys { table[table.findOrInsert(key(index), SyncCoalescer.Known())].sentExpiry = UInt32(index) }
            XCTAssertEqual(counts.allocated, [huge, 2 * huge])
            XCTAssertEqual(counts.released, [huge], "the grown table's old positions were kept")
            for index in 0...keys { XCTAssertEqual(table.find(key(index)).map { table[$0].sentExpiry }, UInt32(index)) }
        }
        XCTAssertEqual(counts.released, [huge, 2 * huge])
    }

    /// A copy of a table is a value: writing one leaves the other as it was.
    func testACopyIsAValue() {
        var table = SyncFlowTable<Int>(capacity: 4, placeholder: -1)
        var generator = SplitMix64(seed: 4)
        let keys = (0..<50).map { _ in SyncFlowTableTests.key(&generator, space: 200_000) }
        for (value, key) in keys.enumerated() { table[table.findOrInsert(key, value)] = value }
        let copy = table
        for key in keys { table.remove(key) }
        table.findOrInsert(keys[0], 99)
        XCTAssertEqual(table.count, 1)
        XCTAssertEqual(copy.count, Set(keys).count)
        for (value, key) in keys.enumerated() where keys.firstIndex(of: key) == value {
            XCTAssertEqual(copy.find(key).map { copy[$0] }, value)
        }
    }

    /// A deadline is kept in whole units, rounded up: never forgotten before it.
    func testExpiryUnitsNeverComeEarly() {
        var generator = SplitMix64(seed: 5)
        for _ in 0..<10_000 {
            let now = generator.next() >> 4, deadline = now &+ generator.next() % 5_000_000_000
            if deadline > now { XCTAssertGreaterThan(SyncCoalescer.expiryUnits(deadline), UInt32(clamping: now >> 30)) }
        }
    }
}
