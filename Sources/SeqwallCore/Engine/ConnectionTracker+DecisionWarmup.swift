/// The warm-up of a batch's policy decisions, after its connection lookups (BatchLookahead).
///
/// A new flow is decided by the policy, with a lookup in each address table its rules name. In
/// a table of a million prefixes a lookup of a random address reads a directory line and then
/// two or three lines of the flips it names (PrefixMatcher), all of them usually in DRAM.
/// Decided one after the other, each SYN waits for its own misses in turn. As for the
/// connection slots, the batch's new flows are taken level by level instead: the directory
/// lines of all of them, then the flips those name, so that each level's misses are in flight
/// together.
///
/// The rule index is not warmed: with 10,000 rules, reading ahead the candidate rule of each
/// new flow (a second search of the index) cost more time than its misses (BENCHMARKS.md).
///
/// A hint only, as the rest of the warm-up: nothing found here is used to decide, the policy
/// cannot change within a batch, and a garbled header warms the wrong lines.
extension ConnectionTracker {
    /// Warms the decisions of the batch's packets that found no connection
    /// (ConnectionTable.warmSlots) and of its SYNs. Run only for a policy that reads memory
    /// too large to stay cached (Policy.warmsDecisions): for a small one the gathering alone
    /// would cost more than it saves.
    func warmDecisions(_ packets: UnsafeBufferPointer<QueuedPacket>) {
        var newFlows = 0
        for packet in packets.indices
        where batchProbes[packet].tag == 0 || ConnectionTable.lookaheadOpens(packets[packet].bytes) {
            // Entry `newFlows` was read (its tag) before it is written: it never passes `packet`.
            batchProbes[newFlows].newFlow = Int32(truncatingIfNeeded: packet)
            newFlows &+= 1
        }
        let index = policy.index
        let tables = policy.tables
        for lookup in index.tableLookups {
            let position = lookup >> 1
            guard position < tables.count, tables[position].matcher.isLarge else { continue }
            let matcher = tables[position].matcher
            let bySource = lookup & 1 == 0
            for flow in 0..<newFlows {
                let packet = Int(batchProbes[flow].newFlow)
                // Without a key, an empty range: the next step reads nothing for it.
                guard let key = ConnectionTable.lookaheadKey(packets[packet].bytes) else {
                    batchProbes[flow].loaded = 0
                    continue
                }
                batchProbes[flow].loaded = matcher.warmRange(bySource ? key.source : key.destination)
            }
            for flow in 0..<newFlows {
                batchProbes[flow].loaded = matcher.warmSearch(batchProbes[flow].loaded)
            }
        }
    }
}
