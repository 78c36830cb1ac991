/// The `table` command's arguments (docs/control-protocol.md): which table, what to do, and
/// the addresses (`add`, `delete`, `test`) or the file (`replace`, a path the daemon reads).
public struct TableRequest: Codable, Sendable, Equatable {
    public var name: String
    public var operation: TableOperation
    public var addresses: [String]?
    public var file: String?

    public init(name: String, operation: TableOperation, addresses: [String]? = nil, file: String? = nil) {
        self.name = name
        self.operation = operation
        self.addresses = addresses
        self.file = file
    }
}
