/// The warm-up of a batch's policy decisions, after its connection lookups (BatchLookahead).
///
/// A new flow is decided by the policy, with a lookup in each address table its rules name. In
/// a table of a million prefixes a lookup of a random address reads a directory line and then
/// a line of the flips it names (PrefixMatcher), both usually beyond the L2 cache. Decided one
/// after the other, each SYN waits for its own misses in turn. As for the connection slots, the
/// batch's new flows are taken level by level instead: the directory lines of all of them,
/// then the flips those name, so that each level's misses are in flight together. Both levels
/// prefetch (CPrefetch) rather than load: a load has to wait for its line before it retires,
/// so loads fill the reorder buffer after a few flows and only those flows' lines are in
/// flight; prefetches retire at once and put the whole batch's lines in flight (BENCHMARKS.md,
/// Address tables).
///
/// The rule index is not warmed: with 10,000 rules, reading ahead the candidate rule of each
/// new flow (a second search of the index) cost more time than its misses (BENCHMARKS.md).
///
/// The third level finishes each lookup on the lines the levels before brought in and keeps its
/// answer (TableAnswers), which the packet's decision then takes instead of searching again:
/// a table lookup is one search per SYN, not two. An IPv6 address inside a /65 to /128 entry
/// ties with a flip on its high word and needs that flip's low word, a line no level read: its
/// search prefetches it and stops, and a last level settles the ties once the other searches
/// are done, instead of each waiting for its low word in turn. The answers are exact whatever the header
/// says (an answer is used only for the table and address it was found for), the policy and
/// its tables cannot change within a batch, and a garbled header only warms the wrong lines.
extension ConnectionTracker {
    /// Warms the decisions of the batch's packets that found no connection
    /// (ConnectionTable.warmSlots) and of its SYNs, and finds their answers in the large
    /// tables; returns how many new flows it gathered, `batchProbes[0..<count].newFlow` their
    /// batch positions (ascending) and `batchAnswers[0..<count]` their answers. Run only for a
    /// policy that reads memory too large to stay cached (Policy.warmsDecisions): for a small
    /// one the gathering alone would cost more than it saves.
    func warmDecisions(_ packets: UnsafeBufferPointer<QueuedPacket>) -> Int {
        var newFlows = 0
        for packet in packets.indices
        where batchProbes[packet].tag == 0 || ConnectionTable.lookaheadOpens(packets[packet].bytes) {
            // A packet without a key has no addresses to look up: no answers, decided as one by one.
            guard let key = ConnectionTable.lookaheadKey(packets[packet].bytes) else { continue }
            // Entry `newFlows` was read (its tag) before it is written: it never passes `packet`.
            batchProbes[newFlows].newFlow = Int32(truncatingIfNeeded: packet)
            batchAnswers[newFlows] = TableAnswers(source: key.source, destination: key.destination)
            newFlows &+= 1
        }
        guard newFlows > 0 else { return 0 }
        let index = policy.index
        let tables = policy.tables
        for lookup in index.tableLookups {
            let position = lookup >> 1
            guard position < tables.count, position < 64, tables[position].matcher.isLarge else { continue }
            let matcher = tables[position].matcher
            let bySource = lookup & 1 == 0
            // The address of flow `flow` that this lookup reads: its source or its destination.
            @inline(__always) func flowAddress(_ flow: Int) -> IPAddress {
                bySource ? batchAnswers[flow].source : batchAnswers[flow].destination
            }
            for flow in 0..<newFlows {
                matcher.prefetchDirectory(flowAddress(flow))
            }
            for flow in 0..<newFlows {
                batchProbes[flow].loaded = matcher.warmRange(flowAddress(flow))
            }
            var ties = 0
            for flow in 0..<newFlows {
                let address = flowAddress(flow)
                let found = matcher.search(address, inRange: batchProbes[flow].loaded)
                batchProbes[flow].loaded = found
                if found & PrefixMatcher.tiePending != 0 {
                    ties &+= 1
                } else {
                    batchAnswers[flow].record(found & 1 == 1, position: position, bySource: bySource)
                }
            }
            guard ties > 0 else { continue }
            for flow in 0..<newFlows where batchProbes[flow].loaded & PrefixMatcher.tiePending != 0 {
                batchAnswers[flow].record(matcher.answer(flowAddress(flow), found: batchProbes[flow].loaded), position: position,
                                          bySource: bySource)
            }
        }
        return newFlows
    }
}
