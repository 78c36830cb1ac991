/// What makes a rule the same rule across a reload, for its per-source counts: what it
/// matches. Not its line (rules move when others are added above them) and not its limit
/// (raising or lowering the limit should keep the counts it limits).
struct RuleIdentity: Hashable {
    let direction: Direction
    let from: [IPNetwork]
    let to: [IPNetwork]
    let ports: [PortRange]

    init(_ rule: Rule) {
        direction = rule.direction
        from = rule.from
        to = rule.to
        ports = rule.ports
    }
}
