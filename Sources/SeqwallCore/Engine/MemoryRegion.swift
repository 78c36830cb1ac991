/// One block of memory a table allocates once for an array and never resizes (ConnectionTable's
/// index and slots, LookupRegion): uninitialised, and given back with `release` by its owner's
/// deinit.
///
/// A region that can hold a huge page comes from the owner's RegionProvider, on a huge page
/// boundary, so that it is faulted in as huge pages; its length stays the array's own (a
/// partial last huge page keeps small pages rather than costing up to 2 MiB more per array).
/// Without a provider, or when it has none to give, it comes from the Swift heap on the same
/// boundary. Smaller regions come from the Swift heap on a cache line.
struct MemoryRegion {
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    /// The provider it came from; nil for the Swift heap.
    private let provider: RegionProvider?

    init(byteCount: Int, provider: RegionProvider?) {
        self.byteCount = byteCount
        let isLarge = byteCount >= ConnectionTable.hugePageBytes
        if isLarge, let provider, let start = provider.allocate(byteCount) {
            precondition(Int(bitPattern: start) % ConnectionTable.hugePageBytes == 0, "a region off a huge page boundary")
            base = start
            self.provider = provider
        } else {
            base = .allocate(byteCount: byteCount, alignment: isLarge ? ConnectionTable.hugePageBytes : 64)
            self.provider = nil
        }
    }

    /// Room for `count` values of a trivial type (ConnectionTable's arrays).
    init<Element>(_: Element.Type, count: Int, provider: RegionProvider?) {
        self.init(byteCount: count * MemoryLayout<Element>.stride, provider: provider)
    }

    /// Gives the memory back to where it came from; the region is not used afterwards.
    func release() {
        if let provider { provider.release(base, byteCount) } else { base.deallocate() }
    }
}
