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
/// A large rule index (RuleIndex.warmsLookups) is read ahead too, before the tables: each new
/// flow's port table entry and address directory entries, and what those point to, down to
/// the match records of lists of one rule (RuleIndex.warm), without a branch on anything
/// loaded (BENCHMARKS.md, "Reading the rule index ahead").
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
        if index.warmsLookups { warmRuleIndex(packets, newFlows: newFlows, index: index) }
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

    /// The rule-index lookups of the batch's new flows, one after the other in a loop whose
    /// reads never wait on each other (RuleIndex.warm), so that the misses of several flows
    /// are in flight together.
    private func warmRuleIndex(_ packets: UnsafeBufferPointer<QueuedPacket>, newFlows: Int, index: RuleIndex) {
        for flow in 0..<newFlows {
            let packet = packets[Int(batchProbes[flow].newFlow)]
            guard let key = ConnectionTable.lookaheadKey(packet.bytes),
                  let protocolName = TrackedProtocol(protocolNumber: key.protocolNumber) else { continue }
            batchProbes[flow].loaded = index.warm(protocolName: protocolName,
                                                  direction: direction(of: packet.hook, source: key.source,
                                                                       destination: key.destination),
                                                  source: key.source, destination: key.destination,
                                                  destinationPort: key.destinationPort)
        }
    }
}
