/// The answers of a new flow's address-table lookups, found by the batch warm-up
/// (ConnectionTracker+DecisionWarmup.swift) so that the decision does not search again.
///
/// An answer is that of `AddressTable.contains` for one table position and one address, which
/// depend on nothing else: it is used only for the same table position and an address equal
/// to the one it was found for, so a garbled header, a flow decided with its addresses swapped
/// (a connection picked up from its reply) or a table the warm-up skipped just finds no answer
/// and is looked up as without the warm-up. The tracker points its decision at a flow's answers
/// only while deciding that packet in the batch the answers were found in: tables and policy
/// change between batches only (the worker's mailbox jobs, QueueWorker), never within one.
/// Tables past position 63 get no answers. 64 bytes: one cache line per flow.
struct TableAnswers {
    /// The flow's addresses as the warm-up read them (ConnectionTable.lookaheadKey).
    var source: IPAddress
    var destination: IPAddress
    /// Bit `p`: the answer for table position `p` and `source` is known, and is `contains`.
    var sourceKnown: UInt64 = 0
    var sourceContained: UInt64 = 0
    /// The same for `destination`.
    var destinationKnown: UInt64 = 0
    var destinationContained: UInt64 = 0

    init(source: IPAddress, destination: IPAddress) {
        self.source = source
        self.destination = destination
    }

    /// Records the answer of table `position` for the source (`bySource`) or the destination.
    mutating func record(_ contained: Bool, position: Int, bySource: Bool) {
        guard position < 64 else { return }
        let bit: UInt64 = 1 << UInt64(position)
        let value: UInt64 = contained ? bit : 0
        if bySource {
            sourceKnown |= bit
            sourceContained |= value
        } else {
            destinationKnown |= bit
            destinationContained |= value
        }
    }

    /// `AddressTable.contains` of table `position` for `address` on the flow's source
    /// (`bySource`) or destination side, when it was found for that address; nil otherwise.
    @inline(__always)
    func answer(position: Int, address: IPAddress, bySource: Bool) -> Bool? {
        guard position < 64 else { return nil }
        let bit: UInt64 = 1 << UInt64(position)
        if bySource {
            guard sourceKnown & bit != 0, source == address else { return nil }
            return sourceContained & bit != 0
        }
        guard destinationKnown & bit != 0, destination == address else { return nil }
        return destinationContained & bit != 0
    }
}
