@testable import SeqwallCore
import SeqwallTestSupport
import Testing

private func key(_ index: Int, ipv6: Bool = false) -> FlowKey {
    let client = ipv6 ? IPAddress(high: 0x2001_0DB8_0001_0000, low: UInt64(index / 1000 + 1))
        : IPAddress(ipv4: 0xC633_6400 | UInt32(index / 1000 + 1))
    let server = ipv6 ? ip("2001:db8:2::10") : ip("203.0.113.10")
    return FlowKey(source: client, destination: server, sourcePort: UInt16(10_000 + index % 1000), destinationPort: 443)
}

private func connection(_ key: FlowKey, tag: UInt64 = 0) -> Connection {
    var connection = Connection(key: key, direction: .inbound)
    connection.state = .established
    connection.packetsOriginal = tag
    return connection
}

@Suite("Connection table")
struct ConnectionTableTests {
    // Sizing: exactly `limit` entry slots; the index a power of two with the load at most 3/4
    // (open addressing needs empty positions); at most 192 bytes per connection in all.
    @Test(arguments: [1, 12, 13, 48, 49, 1000, 262_144])
    func capacity(limit: Int) {
        let table = ConnectionTable(limit: limit, hasher: FlowHasher(seeds: (1, 2, 3, 4, 5)))
        #expect(table.capacity == limit)
        #expect(table.indexCapacity >= 16)
        #expect(table.indexCapacity & (table.indexCapacity - 1) == 0)
        #expect(table.indexCapacity * 3 >= limit * 4)
        #expect(table.indexCapacity == 16 || (table.indexCapacity / 2) * 3 < limit * 4)
        if limit >= 1000 { #expect(table.bytes <= 192 * limit) }
        #expect(table.limit == limit)
        #expect(table.count == 0)
    }

    // One slot serves a connection both ways: the key as stored is .original, the reversed key
    // .reply; a key sharing only some fields is not found.
    @Test func insertAndFindBothDirections() throws {
        let table = ConnectionTable(limit: 100, hasher: FlowHasher(seeds: (9, 8, 7, 6, 5)))
        let k = key(1)
        let slot = try #require(table.insert(connection(k, tag: 42)))
        #expect(table.count == 1)
        #expect(table.isOccupied(slot))
        let forward = try #require(table.find(k))
        #expect(forward.slot == slot)
        #expect(forward.direction == .original)
        let backward = try #require(table.find(k.reversed))
        #expect(backward.slot == slot)
        #expect(backward.direction == .reply)
        #expect(table.connection(at: slot).pointee.packetsOriginal == 42)

        var otherPort = k
        otherPort.destinationPort = 444
        #expect(table.find(otherPort) == nil)
        var otherProtocol = k
        otherProtocol.protocolNumber = 17
        #expect(table.find(otherProtocol) == nil)
        // Source and destination swapped without the ports: not the same flow.
        var halfSwapped = k
        halfSwapped.source = k.destination
        halfSwapped.destination = k.source
        #expect(table.find(halfSwapped) == nil)

        // Updated in place through the pointer.
        table.connection(at: slot).pointee.state = .finWait
        #expect(table.connection(at: try #require(table.find(k.reversed)).slot).pointee.state == .finWait)
    }

    // The flow hash is symmetric (both directions land on one slot) and depends on the seed.
    @Test func hashSymmetric() {
        var generator = SplitMix64(seed: 7)
        let hasher = FlowHasher(using: &generator)
        let other = FlowHasher(seeds: (1, 1, 1, 1, 1))
        var differs = 0
        for index in 0..<2000 {
            let k = key(index, ipv6: index % 2 == 0)
            #expect(hasher.hash(k) == hasher.hash(k.reversed))
            if hasher.hash(k) != other.hash(k) { differs += 1 }
        }
        // Same address both ends (ports decide the order).
        let same = FlowKey(source: ip("10.0.0.1"), destination: ip("10.0.0.1"), sourcePort: 1, destinationPort: 2)
        #expect(hasher.hash(same) == hasher.hash(same.reversed))
        #expect(differs > 1990)
    }

    // `limit states`: insert refuses past the limit, and frees up after a removal.
    @Test func limitEnforced() throws {
        let table = ConnectionTable(limit: 5, hasher: FlowHasher(seeds: (1, 2, 3, 4, 5)))
        for index in 0..<5 {
            #expect(table.insert(connection(key(index))) != nil)
        }
        #expect(table.isFull)
        #expect(table.insert(connection(key(99))) == nil)
        #expect(table.count == 5)
        #expect(table.find(key(99)) == nil)
        table.remove(at: try #require(table.find(key(2))).slot)
        #expect(!table.isFull)
        #expect(table.insert(connection(key(99))) != nil)
        #expect(table.find(key(99)) != nil)
    }

    // Backward-shift deletion (Knuth 6.4 algorithm R): after every removal, in random order,
    // every remaining entry is still found from both directions and the removed one is not.
    // A table at its 3/4 load limit makes long probe chains, including ones that wrap.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func removalKeepsEveryOtherEntryFindable(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let hasher = FlowHasher(using: &generator)
        let table = ConnectionTable(limit: 96, hasher: hasher)
        #expect(table.indexCapacity == 128)
        // The home position in the index: the low hash bits, as the table takes them.
        func home(_ k: FlowKey) -> Int {
            Int(UInt32(truncatingIfNeeded: hasher.hash(k)) & 0x7FFF_FFFF) & (table.indexCapacity - 1)
        }
        // Aim 24 keys at the last four index positions, so that their chain must wrap to
        // position 0 and collide with the keys homed there; fill up with ordinary keys.
        let candidates = (0..<20_000).map { key($0, ipv6: ($0 + Int(seed)) % 2 == 0) }
        var live = Array(candidates.filter { home($0) >= 124 }.prefix(24))
        live += candidates.filter { home($0) < 124 }.prefix(96 - live.count)
        #expect(live.count == 96)
        live.shuffle(using: &generator)
        for (index, k) in live.enumerated() {
            #expect(table.insert(connection(k, tag: UInt64(index))) != nil)
        }
        #expect(table.count == 96)
        // The layout has collisions: some entries are away from their home position.
        var displaced = 0, wrapped = false
        for (index, k) in live.enumerated() {
            let slot = try #require(table.find(k)).slot
            #expect(table.connection(at: slot).pointee.packetsOriginal == UInt64(index))
            let position = table.position(of: slot)
            if home(k) != position { displaced += 1 }
            if position < home(k) { wrapped = true }
        }
        #expect(displaced > 20)
        // A chain runs off the end of the index and continues at position 0.
        #expect(wrapped)

        live.shuffle(using: &generator)
        while let victim = live.popLast() {
            let slot = try #require(table.find(victim)).slot
            table.remove(at: slot)
            #expect(table.find(victim) == nil)
            #expect(table.find(victim.reversed) == nil)
            #expect(table.count == live.count)
            for k in live {
                let found = table.find(k)
                #expect(found?.direction == .original)
                if let found { #expect(table.connection(at: found.slot).pointee.key == k) }
                #expect(table.find(k.reversed)?.direction == .reply)
            }
        }
        #expect(table.count == 0)
        for slot in 0..<table.capacity { #expect(!table.isOccupied(slot)) }
    }

    // Mixed churn: removals and inserts interleaved keep the table consistent.
    @Test func churn() throws {
        var generator = SplitMix64(seed: 99)
        let table = ConnectionTable(limit: 48, hasher: FlowHasher(using: &generator))
        var live = Set<FlowKey>()
        var next = 0
        for _ in 0..<5000 {
            if live.count < 48 && (live.isEmpty || generator.next() % 2 == 0) {
                let k = key(next, ipv6: next % 3 == 0)
                next += 1
                #expect(table.insert(connection(k)) != nil)
                live.insert(k)
            } else {
                let victim = live.randomElement(using: &generator)!
                table.remove(at: try #require(table.find(victim)).slot)
                live.remove(victim)
            }
            #expect(table.count == live.count)
        }
        for k in live { #expect(table.find(k) != nil) }
    }

    // removeAll empties every slot; the table is reusable.
    @Test func removeAll() {
        let table = ConnectionTable(limit: 40, hasher: FlowHasher(seeds: (3, 1, 4, 1, 5)))
        for index in 0..<40 { table.insert(connection(key(index))) }
        table.removeAll()
        #expect(table.count == 0)
        for index in 0..<40 { #expect(table.find(key(index)) == nil) }
        for slot in 0..<table.capacity { #expect(!table.isOccupied(slot)) }
        #expect(table.insert(connection(key(7))) != nil)
        #expect(table.find(key(7)) != nil)
    }

    // forEachSlot in chunks of any size visits each entry exactly once when nothing changes,
    // and returns capacity when done.
    @Test(arguments: [1, 7, 16, 100, 1000])
    func forEachSlotChunks(chunk: Int) {
        let table = ConnectionTable(limit: 200, hasher: FlowHasher(seeds: (5, 4, 3, 2, 1)))
        let keys = (0..<150).map { key($0, ipv6: $0 % 2 == 1) }
        for k in keys { table.insert(connection(k)) }
        var seen: [FlowKey: Int] = [:]
        var cursor = 0
        var calls = 0
        while cursor < table.capacity {
            let next = table.forEachSlot(from: cursor, examining: chunk) { slot, connection in
                #expect(table.isOccupied(slot))
                seen[connection.key, default: 0] += 1
            }
            #expect(next > cursor)
            #expect(next == min(table.capacity, cursor + chunk))
            cursor = next
            calls += 1
        }
        #expect(cursor == table.capacity)
        #expect(calls == (table.capacity + chunk - 1) / chunk)
        #expect(seen.count == keys.count)
        #expect(seen.values.allSatisfy { $0 == 1 })
    }

    // A listing in chunks with removals and inserts between the chunks (packets are handled
    // between them): every connection that stays in the table from the start of the listing
    // to its end is listed, although each removal moves the last connection into its slot.
    @Test(arguments: [1, 5, 16] as [Int])
    func forEachSlotMissesNothingUnderChurn(chunk: Int) throws {
        var generator = SplitMix64(seed: UInt64(chunk))
        let table = ConnectionTable(limit: 200, hasher: FlowHasher(seeds: (9, 8, 7, 6, 5)))
        var live = (0..<180).map { key($0, ipv6: $0 % 2 == 0) }
        for k in live { table.insert(connection(k)) }
        var stayed = Set(live)
        var seen = Set<FlowKey>()
        var next = 1000
        var cursor = 0
        while cursor < table.capacity {
            cursor = table.forEachSlot(from: cursor, examining: chunk) { slot, connection in
                #expect(table.isOccupied(slot))
                seen.insert(connection.key)
            }
            // Between one chunk in four and the next: remove two random connections; add one
            // new after every chunk.
            for _ in 0..<(generator.next() % 4 == 0 ? 2 : 0) where !live.isEmpty {
                let victim = live.remove(at: Int(generator.next() % UInt64(live.count)))
                table.remove(at: try #require(table.find(victim)).slot)
                stayed.remove(victim)
            }
            let newcomer = key(next, ipv6: next % 2 == 0)
            next += 1
            if table.insert(connection(newcomer)) != nil { live.append(newcomer) }
        }
        #expect(stayed.count > 0)
        #expect(stayed.isSubset(of: seen))
    }
}
