import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// A tracker whose table is filled by hand with connections of chosen deadlines, to test the
/// expiry wheel under ConnectionTracker.expire, with a fake clock in whole and half seconds.
private final class WheelLab {
    let tracker: ConnectionTracker
    var table: ConnectionTable { tracker.table }
    var now: UInt64 = 5_000 * nanosecondsPerSecond

    init(limit: Int = 1000, wheelBuckets: Int = 16, seed: UInt64 = 1) {
        var generator = SplitMix64(seed: seed)
        tracker = ConnectionTracker(policy: Policy(), capacity: limit, hasher: FlowHasher(using: &generator),
                                    wheelBuckets: wheelBuckets)
    }

    static func key(_ index: Int) -> FlowKey {
        FlowKey(source: IPAddress(ipv4: 0xC633_6400 | UInt32(index / 50_000 + 1)),
                destination: IPAddress(ipv4: 0xCB00_710A), sourcePort: UInt16(1024 + index % 50_000),
                destinationPort: 443)
    }

    /// Files an established connection that expires `seconds` from now.
    @discardableResult
    func insert(_ index: Int, expiresIn seconds: UInt64, plus nanoseconds: UInt64 = 0) -> Int? {
        var connection = Connection(key: WheelLab.key(index), direction: .inbound)
        connection.state = .established
        connection.expiresAt = now + seconds * nanosecondsPerSecond + nanoseconds
        return table.insert(connection)
    }

    func has(_ index: Int) -> Bool { table.find(WheelLab.key(index)) != nil }

    /// What a packet does: a new deadline, then the table told about it.
    func setDeadline(_ index: Int, expiresIn seconds: UInt64) throws {
        let slot = try #require(table.find(WheelLab.key(index))).slot
        table.connection(at: slot).pointee.expiresAt = now + seconds * nanosecondsPerSecond
        table.deadlineChanged(at: slot)
    }

    func advance(seconds: UInt64, then expire: Bool = true) {
        now += seconds * nanosecondsPerSecond
        if expire { tracker.expire(now: now, budget: Int.max) }
    }

    /// Every list of the wheel is a well-formed ring; every occupied slot is on exactly one,
    /// in the bucket of its visit tick (or in the taken list), and no empty slot is on any.
    func checkWheel(sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let wheel = table.wheel
        var seen = [Int](repeating: 0, count: table.capacity)
        for head in wheel.slotCount...wheel.takenHead {
            var previous = head
            var node = wheel.next(head)
            var steps = 0
            while node != head && steps <= table.capacity {
                guard node < wheel.slotCount else {
                    Issue.record("list \(head) reaches another head \(node)", sourceLocation: sourceLocation)
                    return
                }
                #expect(wheel.previous(node) == previous, sourceLocation: sourceLocation)
                seen[node] += 1
                if head != wheel.takenHead {
                    let visit = UInt64(table.connection(at: node).pointee.wheelTick)
                    #expect(wheel.head(ofTick: visit) == head, sourceLocation: sourceLocation)
                    #expect(visit >= wheel.nextTick && visit < wheel.nextTick + UInt64(wheel.bucketCount),
                            sourceLocation: sourceLocation)
                }
                previous = node
                node = wheel.next(node)
                steps += 1
            }
            #expect(node == head, "list \(head) does not close", sourceLocation: sourceLocation)
            #expect(wheel.previous(head) == previous, sourceLocation: sourceLocation)
        }
        for slot in 0..<table.capacity {
            #expect(seen[slot] == (table.isOccupied(slot) ? 1 : 0), "slot \(slot)", sourceLocation: sourceLocation)
        }
    }
}

@Suite("Expiry wheel")
struct ExpiryWheelTests {
    // The wheel's links live beside the table, not in Connection, and the visit tick sits in
    // Connection's padding: the wheel adds nothing to a connection. 160 B is what the tracking
    // state plus the half-open limiter's charges (createdAt, charges, rule) take, within a
    // budget of 192 B per connection in all, table slack included.
    @Test func connectionDoesNotGrow() {
        #expect(MemoryLayout<Connection>.size == 160)
        #expect(MemoryLayout<Connection>.stride == 160)
    }

    // A deadline on a whole second goes exactly then: one tick before it stays.
    @Test func expiresExactlyAtTheDeadline() {
        let lab = WheelLab()
        lab.insert(1, expiresIn: 10)
        lab.checkWheel()
        lab.advance(seconds: 9)
        #expect(lab.has(1))
        lab.advance(seconds: 1)
        #expect(!lab.has(1))
        #expect(lab.table.count == 0)
        #expect(lab.tracker.counters.destroyed == 1)
        lab.checkWheel()
    }

    // A deadline between ticks goes on the first tick at or after it: never before it, and
    // never more than a tick late.
    @Test func deadlineBetweenTicks() {
        let lab = WheelLab()
        lab.insert(1, expiresIn: 10, plus: 300_000_000)
        lab.advance(seconds: 10)
        #expect(lab.has(1))
        lab.now += 400_000_000   // 0.1 s past the deadline, same tick: still filed
        lab.tracker.expire(now: lab.now, budget: .max)
        #expect(lab.has(1))
        lab.now += 600_000_000   // the next tick
        lab.tracker.expire(now: lab.now, budget: .max)
        #expect(!lab.has(1))
    }

    // Packets push deadlines later without touching the wheel: the visit on the old deadline
    // refiles the connection, which then goes on its new one.
    @Test func laterDeadlineIsRefiledOnVisit() throws {
        let lab = WheelLab()
        lab.insert(1, expiresIn: 10)
        let slot = try #require(lab.table.find(WheelLab.key(1))).slot
        let visit = lab.table.connection(at: slot).pointee.wheelTick
        try lab.setDeadline(1, expiresIn: 22)
        // Later: no refile from the packet path.
        #expect(lab.table.connection(at: slot).pointee.wheelTick == visit)
        lab.advance(seconds: 10)
        #expect(lab.has(1))
        #expect(lab.tracker.counters.destroyed == 0)
        lab.checkWheel()
        lab.advance(seconds: 11)
        #expect(lab.has(1))
        lab.advance(seconds: 1)
        #expect(!lab.has(1))
    }

    // A deadline moved before the next visit (a RST after a long idle stretch) is refiled at
    // once and met on its own tick.
    @Test func earlierDeadlineIsRefiledAtOnce() throws {
        let lab = WheelLab(wheelBuckets: 64)
        lab.insert(1, expiresIn: 50)
        try lab.setDeadline(1, expiresIn: 5)
        lab.checkWheel()
        lab.advance(seconds: 4)
        #expect(lab.has(1))
        lab.advance(seconds: 1)
        #expect(!lab.has(1))
    }

    // A new connection is first looked at halfway to its deadline, so the handshake never
    // refiles it from the packet path: the SYN-ACK's SYN_RECV deadline (60 s) is not before
    // that look, nor are the ACK's and the data's later ones. The look refiles it.
    @Test(arguments: Family.allCases)
    func handshakeStaysOffTheWheel(family: Family) throws {
        let lab = Lab(family: family)
        lab.tracker.expire(now: lab.now, budget: .max)   // the wheel's clock is the lab's
        lab.send(.client, .syn, seq: lab.clientISN, ack: 0)
        let visit = try #require(lab.connection).wheelTick
        #expect(UInt64(visit) == lab.now / nanosecondsPerSecond + 60)
        lab.advance(seconds: 1)
        lab.send(.server, [.syn, .ack], seq: lab.serverISN, ack: lab.clientISN &+ 1)
        #expect(lab.state == .synRecv)
        #expect(lab.connection?.wheelTick == visit)
        lab.send(.client, .ack, seq: lab.clientISN &+ 1, ack: lab.serverISN &+ 1)
        lab.clientNext = lab.clientISN &+ 1
        lab.serverNext = lab.serverISN &+ 1
        lab.data(.client, 100)
        #expect(lab.state == .established)
        #expect(lab.connection?.wheelTick == visit)
        lab.advance(seconds: 59)
        lab.tracker.expire(now: lab.now, budget: .max)
        // Looked at on its tick, and filed by its deadline (UNACK, 300 s after the data).
        #expect(UInt64(try #require(lab.connection).wheelTick) == lab.now / nanosecondsPerSecond + 241)
    }

    // Deadlines several turns of the wheel away come round once a turn and go on their own tick.
    @Test func deadlineLongerThanTheWheel() {
        let lab = WheelLab(wheelBuckets: 8)
        lab.insert(1, expiresIn: 8 * 5 + 3)
        lab.insert(2, expiresIn: 8)
        lab.insert(3, expiresIn: 16)
        for second in 1...(8 * 5 + 2) {
            lab.advance(seconds: 1)
            #expect(lab.has(1), "second \(second)")
            #expect(lab.has(2) == (second < 8))
            #expect(lab.has(3) == (second < 16))
            lab.checkWheel()
        }
        lab.advance(seconds: 1)
        #expect(!lab.has(1))
        #expect(lab.tracker.counters.destroyed == 3)
    }

    // Removing a connection takes it off the wheel: it is never expired (nor counted) again.
    @Test func removedConnectionsLeaveTheWheel() throws {
        let lab = WheelLab()
        for index in 0..<20 { lab.insert(index, expiresIn: 5) }
        for index in stride(from: 0, to: 20, by: 2) {
            lab.table.remove(at: try #require(lab.table.find(WheelLab.key(index))).slot)
        }
        lab.checkWheel()
        lab.advance(seconds: 5)
        #expect(lab.table.count == 0)
        #expect(lab.tracker.counters.destroyed == 10)
        lab.checkWheel()
    }

    // A burst of deadlines larger than the budget goes a budget at a time; expire says whether
    // more are due, and the counts stay exact.
    @Test func burstLargerThanTheBudget() {
        let lab = WheelLab(limit: 1000)
        for index in 0..<1000 { lab.insert(index, expiresIn: 30) }
        lab.insert(5000, expiresIn: 31)
        #expect(lab.table.count == 1000)
        lab.now += 30 * nanosecondsPerSecond
        for round in 1...3 {
            #expect(lab.tracker.expire(now: lab.now, budget: 300))
            #expect(lab.tracker.counters.destroyed == UInt64(300 * round))
            #expect(lab.table.count == 1000 - 300 * round)
            lab.checkWheel()
        }
        #expect(!lab.tracker.expire(now: lab.now, budget: 300))
        #expect(lab.tracker.counters.destroyed == 1000)
        #expect(lab.table.count == 0)
        #expect(!lab.tracker.expire(now: lab.now, budget: 300))
    }

    // A full table refuses a newcomer until expiry frees a slot.
    @Test func insertFailsOnlyWhileFull() {
        let lab = WheelLab(limit: 10)
        for index in 0..<10 { #expect(lab.insert(index, expiresIn: UInt64(index + 1)) != nil) }
        #expect(lab.insert(99, expiresIn: 1) == nil)
        lab.advance(seconds: 1)
        #expect(lab.insert(99, expiresIn: 1) != nil)
        lab.checkWheel()
    }

    // After a pause longer than a turn (the worker was stopped or the clock jumped), one call
    // looks at each bucket once and finds every due connection, and only those.
    @Test func catchUpAfterALongPause() {
        let lab = WheelLab(wheelBuckets: 16)
        for index in 0..<100 { lab.insert(index, expiresIn: UInt64(1 + index)) }
        lab.advance(seconds: 50)
        for index in 0..<100 { #expect(lab.has(index) == (index >= 50), "\(index)") }
        lab.checkWheel()
        lab.advance(seconds: 1_000)
        #expect(lab.table.count == 0)
        #expect(lab.tracker.counters.destroyed == 100)
    }

    // Backward-shift deletion moves entries between slots (here along chains that wrap past
    // the end of the array): each keeps its place on the wheel and still goes on its deadline.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func movedEntriesStillExpire(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let lab = WheelLab(limit: 96, wheelBuckets: 8, seed: seed)
        #expect(lab.table.indexCapacity == 128)
        // Fill to the load limit, with many keys homed on the last index positions so chains
        // wrap.
        let hasher = lab.table.hasher
        func home(_ k: FlowKey) -> Int { lab.table.home(of: lab.table.tag(for: hasher.hash(k))) }
        let candidates = Array(0..<20_000)
        var indices = Array(candidates.filter { home(WheelLab.key($0)) >= 120 }.prefix(30))
        indices += candidates.filter { home(WheelLab.key($0)) < 120 }.prefix(96 - indices.count)
        var deadline: [Int: UInt64] = [:]
        for index in indices {
            deadline[index] = 1 + generator.next() % 40
            #expect(lab.insert(index, expiresIn: deadline[index]!) != nil)
        }
        var moved = 0
        // Remove a third, checking which entries the removals moved.
        indices.shuffle(using: &generator)
        for index in indices.prefix(32) {
            let before = Dictionary(uniqueKeysWithValues: indices.compactMap { i in
                lab.table.find(WheelLab.key(i)).map { (i, $0.slot) } })
            lab.table.remove(at: try #require(lab.table.find(WheelLab.key(index))).slot)
            deadline[index] = nil
            for (other, slot) in before where other != index {
                if lab.table.find(WheelLab.key(other))?.slot != slot { moved += 1 }
            }
            lab.checkWheel()
        }
        #expect(moved > 5)
        for second in UInt64(1)...41 {
            lab.advance(seconds: 1)
            for (index, due) in deadline { #expect(lab.has(index) == (second < due), "\(index) at \(second)") }
        }
        #expect(lab.tracker.counters.destroyed == 64)
    }

    // A random mix of inserts, removals, later and earlier deadlines and clock steps of half a
    // second, against a model: a connection is in the table exactly until the tick of its
    // deadline has come, and each is destroyed once.
    @Test(arguments: [11, 12] as [UInt64])
    func randomAgainstAModel(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let lab = WheelLab(limit: 200, wheelBuckets: 16, seed: seed)
        var deadline: [Int: UInt64] = [:]   // nanoseconds
        var nextIndex = 0
        var expectedDestroyed: UInt64 = 0
        for step in 0..<3000 {
            switch generator.next() % 10 {
            case 0...3 where deadline.count < 200:
                let seconds = 1 + generator.next() % 50
                let extra = generator.next() % 2 == 0 ? 0 : generator.next() % nanosecondsPerSecond
                try #require(lab.insert(nextIndex, expiresIn: seconds, plus: extra) != nil)
                deadline[nextIndex] = lab.now + seconds * nanosecondsPerSecond + extra
                nextIndex += 1
            case 4 where !deadline.isEmpty:
                let victim = deadline.keys.sorted()[Int(generator.next() % UInt64(deadline.count))]
                lab.table.remove(at: try #require(lab.table.find(WheelLab.key(victim))).slot)
                deadline[victim] = nil
            case 5...6 where !deadline.isEmpty:
                let index = deadline.keys.sorted()[Int(generator.next() % UInt64(deadline.count))]
                let seconds = 1 + generator.next() % 50
                try lab.setDeadline(index, expiresIn: seconds)
                deadline[index] = lab.now + seconds * nanosecondsPerSecond
            default:
                lab.now += nanosecondsPerSecond / 2
                lab.tracker.expire(now: lab.now, budget: .max)
                let tickNow = lab.now / nanosecondsPerSecond
                for (index, due) in deadline {
                    let gone = ExpiryWheel.tick(of: due) <= tickNow
                    #expect(lab.has(index) == !gone, "step \(step): \(index)")
                    // Never before the deadline.
                    if gone { #expect(due <= lab.now) }
                    if gone {
                        deadline[index] = nil
                        expectedDestroyed += 1
                    }
                }
                #expect(lab.tracker.counters.destroyed == expectedDestroyed)
                #expect(lab.table.count == deadline.count)
            }
            if step % 100 == 0 { lab.checkWheel() }
        }
        lab.checkWheel()
    }
}

@Suite("Removing connections by filter")
struct RemoveConnectionsTests {
    // conntrack delete/flush: every selected connection goes, including ones on chains that
    // wrap past the end of the table and shift across it; the others stay; each connection is
    // judged exactly once.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func selectedGoOthersStay(seed: UInt64) throws {
        var generator = SplitMix64(seed: seed)
        let lab = WheelLab(limit: 96, wheelBuckets: 8, seed: seed)
        let hasher = lab.table.hasher
        func home(_ k: FlowKey) -> Int { lab.table.home(of: lab.table.tag(for: hasher.hash(k))) }
        let candidates = Array(0..<20_000)
        var indices = Array(candidates.filter { home(WheelLab.key($0)) >= 122 }.prefix(40))
        indices += candidates.filter { home(WheelLab.key($0)) < 122 }.prefix(96 - indices.count)
        indices.shuffle(using: &generator)
        for index in indices { #expect(lab.insert(index, expiresIn: 100) != nil) }
        // Some chain wraps: an entry sits at a lower index position than its home.
        #expect(indices.contains {
            lab.table.position(of: lab.table.find(WheelLab.key($0))!.slot) < home(WheelLab.key($0))
        })

        let selected = Set(indices.filter { _ in generator.next() % 2 == 0 })
        var judged: [FlowKey: Int] = [:]
        let removed = lab.tracker.removeConnections { connection in
            judged[connection.key, default: 0] += 1
            return selected.contains(indices.first { WheelLab.key($0) == connection.key }!)
        }
        #expect(removed == selected.count)
        #expect(judged.count == 96)
        #expect(judged.values.allSatisfy { $0 == 1 })
        for index in indices { #expect(lab.has(index) == !selected.contains(index)) }
        #expect(lab.table.count == 96 - selected.count)
        #expect(lab.tracker.counters.destroyed == UInt64(selected.count))
        lab.checkWheel()
        // Flush: everything.
        #expect(lab.tracker.removeConnections { _ in true } == 96 - selected.count)
        #expect(lab.table.count == 0)
        lab.checkWheel()
    }
}
