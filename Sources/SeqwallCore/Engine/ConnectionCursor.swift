/// Where a listing of a tracker's connections in chunks goes on from
/// (ConnectionTracker.forEachConnection(from:examining:_:)). Opaque: what it counts is the
/// table's business.
public struct ConnectionCursor: Sendable, Equatable {
    /// How many of the table's entries the listing has looked at.
    let examined: Int

    /// The beginning of a listing.
    public static let start = ConnectionCursor(examined: 0)
}
