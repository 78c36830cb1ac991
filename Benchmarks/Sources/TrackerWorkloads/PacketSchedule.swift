import SeqwallCore

/// Pre-built packets in one contiguous buffer, read in order by the measured loop (as the
/// daemon reads them from its receive buffer). Filled outside the measured region.
final class PacketSchedule {
    let count: Int
    let stride: Int
    let bytes: UnsafeMutableRawPointer
    let capturedLengths: UnsafeMutablePointer<UInt16>
    let wireLengths: UnsafeMutablePointer<UInt32>
    /// One batch of packets and its verdicts, as the daemon's worker keeps them.
    let batch: UnsafeMutablePointer<QueuedPacket>
    let verdicts: UnsafeMutablePointer<Verdict>

    /// `packetBytes`: the most bytes a packet takes (headers only unless payloads are captured).
    init(count: Int, packetBytes: Int = SegmentSpec.maximumHeaderBytes) {
        self.count = count
        stride = (packetBytes + 15) & ~15
        bytes = .allocate(byteCount: count * stride, alignment: 64)
        capturedLengths = .allocate(capacity: count)
        wireLengths = .allocate(capacity: count)
        batch = .allocate(capacity: ConnectionTracker.batchCapacity)
        verdicts = .allocate(capacity: ConnectionTracker.batchCapacity)
        verdicts.initialize(repeating: .accept, count: ConnectionTracker.batchCapacity)
    }

    deinit {
        bytes.deallocate()
        capturedLengths.deallocate()
        wireLengths.deallocate()
        batch.deallocate()
        verdicts.deallocate()
    }

    func set(_ index: Int, _ segment: SegmentSpec) {
        let (captured, wireLength) = segment.packet()
        precondition(captured.count <= stride, "a packet larger than the schedule's stride")
        captured.withUnsafeBytes { (bytes + index * stride).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        capturedLengths[index] = UInt16(captured.count)
        wireLengths[index] = UInt32(wireLength)
    }

    /// Runs every packet through `tracker` at `now`, the way `feeding` says; returns how many
    /// were accepted. This loop is the measured region: no allocation, no I/O, nothing but the
    /// tracker.
    @inline(never)
    func run(through tracker: ConnectionTracker, now: UInt64, feeding: Feeding) -> Int {
        switch feeding {
        case .batches: return runBatches(through: tracker, now: now)
        case .oneByOne: return runOneByOne(through: tracker, now: now)
        }
    }

    func packet(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes + index * stride, count: Int(capturedLengths[index]))
    }

    func runOneByOne(through tracker: ConnectionTracker, now: UInt64) -> Int {
        var accepted = 0
        for index in 0..<count {
            // Matched, not compared: Verdict's synthesized `==` is a call once it has four cases.
            if case .accept = tracker.process(packet(index), wireLength: Int(wireLengths[index]), hook: .forward,
                                              now: now) {
                accepted += 1
            }
        }
        return accepted
    }

    /// As the daemon's worker does with a receive batch: up to `batchCapacity` packets
    /// described in a buffer it owns, decided by one call, then the verdicts read back.
    /// Called after each batch (tracker-profile --sync-events: what the daemon's worker does
    /// with the table's events between batches when the state sync is on).
    var afterBatch: ((ConnectionTracker) -> Void)?

    func runBatches(through tracker: ConnectionTracker, now: UInt64) -> Int {
        var accepted = 0
        var start = 0
        while start < count {
            accepted += runBatch(from: start, through: tracker, now: now)
            afterBatch?(tracker)
            start += ConnectionTracker.batchCapacity
        }
        return accepted
    }

    /// One batch: the packets from `start` on, up to `batchCapacity` of them.
    func runBatch(from start: Int, through tracker: ConnectionTracker, now: UInt64) -> Int {
        let batchCount = min(ConnectionTracker.batchCapacity, count - start)
        for member in 0..<batchCount {
            batch[member] = QueuedPacket(bytes: packet(start + member), wireLength: Int(wireLengths[start + member]),
                                         hook: .forward)
        }
        tracker.process(batch: UnsafeBufferPointer(start: batch, count: batchCount), verdicts: verdicts, now: now)
        var accepted = 0
        for member in 0..<batchCount {
            if case .accept = verdicts[member] { accepted += 1 }
        }
        return accepted
    }
}
