/// One packet's slot in the scratch area of a batch's warm-up (BatchLookahead.swift).
struct BatchProbe {
    /// The index tag (ConnectionTable.tag(for:)) of the flow key the warm-up read from the
    /// packet (ConnectionTable.lookaheadKey); 0 when it has no key for the packet (not TCP or
    /// UDP over IPv4 or IPv6, or cut too short), which then gets no warm-up; cleared when its
    /// probe found no connection.
    var tag: UInt32
    /// The index position its probe starts at.
    var position: UInt32
    /// What the warm-up loads read, kept so that they stay in the compiled code; in the
    /// decisions' warm-up, what one level hands the next (a range, then a search's result).
    var loaded: UInt64
    /// Entry `n`: the batch position of the `n`th packet the policy is likely to decide (no
    /// connection found, or a SYN), in the decisions' warm-up.
    var newFlow: Int32
}
