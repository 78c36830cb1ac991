/// Where a table's large regions come from: the connection table's index and slots
/// (ConnectionTable) and an address table's lookup arrays (LookupRegion), each a block of at
/// least `ConnectionTable.hugePageBytes` allocated once and written only after it is obtained.
///
/// The core makes no system calls, so the owner hands one in. The daemon's maps each region
/// fresh and advises it onto transparent huge pages before anything is written
/// (HugePageRegions in SeqwallDaemon): advice only reaches the faults that come after it
/// (madvise(2), MADV_HUGEPAGE), and memory the C heap hands out again was faulted in as 4 KiB
/// pages by whatever used it before, so an aligned heap block stays on small pages whatever it
/// is advised (BENCHMARKS.md, Address tables). Without a provider regions come from the Swift
/// heap, aligned on a huge page all the same.
///
/// Sendable: an address table keeps its provider for the tables its live changes make, and
/// those are built on the control thread.
public struct RegionProvider: Sendable {
    /// `byteCount` bytes starting on a `ConnectionTable.hugePageBytes` boundary, or nil when
    /// there are none to be had (the region then comes from the Swift heap).
    public let allocate: @Sendable (_ byteCount: Int) -> UnsafeMutableRawPointer?
    /// Gives back a region `allocate` returned, with the byte count it was asked for.
    public let release: @Sendable (_ start: UnsafeMutableRawPointer, _ byteCount: Int) -> Void

    public init(allocate: @escaping @Sendable (_ byteCount: Int) -> UnsafeMutableRawPointer?,
                release: @escaping @Sendable (_ start: UnsafeMutableRawPointer, _ byteCount: Int) -> Void) {
        self.allocate = allocate
        self.release = release
    }
}
