/// 120 bytes of nothing between two fields of a class (Swift lays a class's stored properties
/// out in their order): fields on either side of it are never on one 64-byte cache line, nor
/// on one 128-byte pair of lines that the adjacent-line prefetcher fetches together, so two
/// threads writing them do not take the line from each other.
struct CacheLineSpacer {
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0,
                                                                                0, 0, 0, 0, 0, 0, 0)
}
