/// One of the ascending lists of candidate rule positions that RuleIndex.first merges: its
/// head (the next position, `Int32.max` once the list is spent) and the rest of it at
/// `next..<end` of the list's array. A list of one rule held inline in the index (a port table
/// entry, an address interval's entry) is a head with nothing after it, so trying it reads no
/// array of lists at all.
struct CandidateCursor {
    var head: Int32
    var next: Int
    let end: Int

    /// A spent list.
    static let empty = CandidateCursor(head: .max, next: 0, end: 0)

    /// The list of one rule, held inline.
    static func single(_ position: Int32) -> CandidateCursor {
        CandidateCursor(head: position, next: 0, end: 0)
    }

    /// The list `list[start..<end]`.
    @inline(__always)
    static func range(_ list: [Int32], _ start: Int, _ end: Int) -> CandidateCursor {
        start < end ? CandidateCursor(head: list[start], next: start + 1, end: end) : .empty
    }

    /// Moves past the head, `list` being the array the rest of the list lies in.
    @inline(__always)
    mutating func advance(_ list: [Int32]) {
        if next < end {
            head = list[next]
            next += 1
        } else {
            head = .max
        }
    }
}
