/// The rules' match records (RuleMatchRecord) in one allocation aligned to a cache line, so
/// that each record is exactly one line: a Swift array's elements start 32 bytes into a
/// 16-byte-aligned object, where a 64-byte record would straddle two. Written once at init,
/// read only after, hence Sendable.
final class RuleMatchRecords: @unchecked Sendable {
    private let start: UnsafeMutablePointer<RuleMatchRecord>
    let count: Int

    init(_ rules: [Rule]) {
        precondition(MemoryLayout<RuleMatchRecord>.stride == 64, "a match record is one cache line")
        count = rules.count
        start = UnsafeMutableRawPointer.allocate(byteCount: max(rules.count, 1) * 64, alignment: 64)
            .bindMemory(to: RuleMatchRecord.self, capacity: max(rules.count, 1))
        for (position, rule) in rules.enumerated() {
            (start + position).initialize(to: RuleMatchRecord(rule))
        }
    }

    deinit {
        start.deinitialize(count: count)
        start.deallocate()
    }

    // Positions come from the rule index's own lists, checked in debug builds.
    subscript(position: Int) -> RuleMatchRecord {
        @inline(__always) get {
            assert(position >= 0 && position < count, "a match record read out of bounds")
            return start[position]
        }
    }
}
