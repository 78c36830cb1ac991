/// What `seqwall table NAME ...` asks of a table (pfctl -t NAME -T ...).
public enum TableOperation: String, Codable, Sendable, CaseIterable {
    /// List the entries (`-T show`).
    case show
    /// Add the addresses and networks (`-T add`); the reply counts those that were new.
    case add
    /// Delete them (`-T delete`); the reply counts those that were there.
    case delete
    /// Remove every entry (`-T flush`).
    case flush
    /// Make the table hold exactly a file's entries (`-T replace -f FILE`).
    case replace
    /// Whether each address matches the table (`-T test`); the reply counts those that do.
    case test
}
