/// A rule as the index tries it. In a class so that trying a candidate reads the rule in place
/// through one reference: a `Rule` read out of an array, or handed on, is a copy of the rule
/// and a retain and release of each of its arrays, which cost more than the match itself.
final class IndexedRule: Sendable {
    let rule: Rule

    init(_ rule: Rule) {
        self.rule = rule
    }

    /// `Rule.matches`, on the rule where it lies.
    @inline(__always)
    func matches(protocolName: TrackedProtocol, direction: Direction, source: IPAddress, destination: IPAddress,
                 destinationPort: UInt16, tables: [AddressTable], answers: UnsafePointer<TableAnswers>?) -> Bool {
        rule.matches(protocolName: protocolName, direction: direction, source: source, destination: destination,
                     destinationPort: destinationPort, tables: tables, answers: answers)
    }
}
