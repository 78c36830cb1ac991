/// `overload <table> [expire DURATION] [flush]` after a per-source connection limit: a source
/// that goes over is added to the table (a persist table, so that neither a reload nor a
/// restart forgets it), for `expireSeconds` when set; with `flush`, its connections counted
/// under that limit are cut.
public struct Overload: Sendable, Equatable {
    public var table: TableReference
    /// nil: the entry stays until deleted by hand (`seqwall table NAME delete`).
    public var expireSeconds: UInt32?
    public var flush: Bool

    public init(table: TableReference, expireSeconds: UInt32? = nil, flush: Bool = false) {
        self.table = table
        self.expireSeconds = expireSeconds
        self.flush = flush
    }
}
