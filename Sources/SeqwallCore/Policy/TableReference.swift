/// `<name>` or `!<name>` in a rule's address list: which of the policy's tables, by position so
/// that a lookup is an array read and a table can be replaced without touching the rules.
public struct TableReference: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    /// Position in `Policy.tables`.
    public let index: Int
    /// `!<name>`: matches the addresses the table does not contain.
    public let negated: Bool

    public init(name: String, index: Int, negated: Bool = false) {
        self.name = name
        self.index = index
        self.negated = negated
    }

    /// Whether `address` matches this reference in `tables` (a missing table contains nothing).
    public func matches(_ address: IPAddress, in tables: [AddressTable]) -> Bool {
        let contained = index < tables.count && tables[index].contains(address)
        return contained != negated
    }

    /// `matches`, with the answer the batch warm-up found for this table and address when it
    /// has one (TableAnswers); `bySource`: the address is the flow's source.
    func matches(_ address: IPAddress, in tables: [AddressTable], answers: UnsafePointer<TableAnswers>?,
                 bySource: Bool) -> Bool {
        if let answers, let contained = answers.pointee.answer(position: index, address: address, bySource: bySource) {
            return contained != negated
        }
        return matches(address, in: tables)
    }

    public var description: String { (negated ? "!<" : "<") + name + ">" }
}
