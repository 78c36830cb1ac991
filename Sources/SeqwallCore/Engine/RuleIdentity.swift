/// What makes a rule the same rule across a reload, for its per-source counts: what it
/// matches. Not its line (rules move when others are added above them) and not its limit
/// (raising or lowering the limit should keep the counts it limits).
struct RuleIdentity: Hashable {
    let direction: Direction
    let from: [IPNetwork]
    let to: [IPNetwork]
    let ports: [PortRange]
    /// Tables by name and negation, not by position: a reload that adds a table before them
    /// leaves the rule the same rule, and two rules that differ only in their tables differ.
    let fromTables: [String]
    let toTables: [String]

    init(_ rule: Rule) {
        direction = rule.direction
        from = rule.from
        to = rule.to
        ports = rule.ports
        fromTables = rule.fromTables.map(\.description)
        toTables = rule.toTables.map(\.description)
    }
}
