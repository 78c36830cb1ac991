import CPrefetch

/// A read-only array inside a LookupRegion, which owns its memory: what PrefixMatcher reads
/// instead of a Swift array, so that its arrays can sit on huge pages. Holds no reference: the
/// matcher keeps the region alive beside its views.
struct LookupArray<Element: BitwiseCopyable>: @unchecked Sendable {
    private let start: UnsafePointer<Element>?
    let count: Int

    init(start: UnsafePointer<Element>?, count: Int) {
        self.start = start
        self.count = count
    }

    /// An empty array, in no region.
    init() { self.init(start: nil, count: 0) }

    var isEmpty: Bool { count == 0 }

    // Always inlined: read in the binary searches of every table lookup on the packet path.
    // Indexes come from the matcher's own directory and search bounds, checked in debug builds.
    subscript(index: Int) -> Element {
        @inline(__always) get {
            assert(index >= 0 && index < count, "a lookup array read out of bounds")
            return start.unsafelyUnwrapped[index]
        }
    }

    /// Starts bringing element `index`'s line into the caches without waiting for it
    /// (CPrefetch). An index out of bounds only prefetches a line that is not read.
    @inline(__always)
    func prefetch(_ index: Int) {
        seqwall_prefetch(start.unsafelyUnwrapped + index)
    }
}
