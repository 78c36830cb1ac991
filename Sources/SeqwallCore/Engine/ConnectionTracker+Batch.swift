extension ConnectionTracker {
    /// The most packets one `process(batch:verdicts:now:)` call takes (the daemon's receive
    /// batch).
    public static let batchCapacity = 64

    /// Decides up to `batchCapacity` packets: `verdicts[i]` for `packets[i]`, exactly as
    /// `process(_:wireLength:hook:now:)` would decide them one after the other, in order.
    ///
    /// Before deciding any, it warms the cache lines their lookups will read (BatchLookahead):
    /// the index entries of the whole batch, then the connection slots those name, then, for the
    /// packets without a connection, what their policy decisions will read
    /// (ConnectionTracker+DecisionWarmup.swift), so that the cache misses of the batch overlap
    /// instead of queueing one behind the other. That is
    /// only a hint: each packet is then decided by the one-packet path, which finds its
    /// connection afresh, so a SYN early in the batch creates the connection a later packet
    /// belongs to and a removal that moves the last slot into the hole is seen by every later
    /// packet, exactly as one by one. Of what the warm-up found, only the answers of table
    /// lookups are used to decide (TableAnswers): each for the same table and address it was
    /// found for, which no packet of the batch can change.
    public func process(batch packets: UnsafeBufferPointer<QueuedPacket>, verdicts: UnsafeMutablePointer<Verdict>,
                        now: UInt64) {
        precondition(packets.count <= ConnectionTracker.batchCapacity, "a batch holds at most batchCapacity packets")
        table.warmIndex(packets, probes: batchProbes)
        table.warmSlots(packets.count, probes: batchProbes)
        guard policy.warmsDecisions else {
            for index in packets.indices {
                let packet = packets[index]
                verdicts[index] = process(packet.bytes, wireLength: packet.wireLength, hook: packet.hook, now: now)
            }
            return
        }
        let newFlows = warmDecisions(packets)
        // The new flows are in packet order: each packet is decided with its own answers, or none.
        var flow = 0
        for index in packets.indices {
            if flow < newFlows, Int(batchProbes[flow].newFlow) == index {
                hot.pointee.tableAnswers = UnsafePointer(batchAnswers + flow)
                flow &+= 1
            } else {
                hot.pointee.tableAnswers = nil
            }
            let packet = packets[index]
            verdicts[index] = process(packet.bytes, wireLength: packet.wireLength, hook: packet.hook, now: now)
        }
        // Answers hold only within their batch: tables and policy may change before the next.
        hot.pointee.tableAnswers = nil
    }
}
