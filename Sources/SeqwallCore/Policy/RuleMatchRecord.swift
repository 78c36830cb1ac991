/// What trying a rule as a candidate needs, in 64 bytes (RuleMatchRecords lays them out one to
/// a cache line): direction, protocol, up to two port ranges (`pass ... port { 80 443 }`), and
/// one source and one destination network inline when the rule has at most one of each. A
/// candidate that fails on those, or plainly passes, costs that one line; only a rule with more
/// (several networks, three or more port ranges, tables) is then read whole (`Rule.matches`), through `IndexedRule`.
/// An address list of one table reference alone (`from <drop>`, `to !<web>`) is held too: in a
/// batch the flow's answer from the warm-up (TableAnswers) decides it here; one by one, or
/// without an answer, the rule is read whole.
/// The rule's action is here too, so that deciding by the rule that passed reads no other line.
struct RuleMatchRecord: BitwiseCopyable {
    /// The answer of the inline fields: the rule cannot match, matches, or must be tried whole.
    enum Answer {
        case fails
        case passes
        case checkRule
    }

    /// How an address list is held: `any` (empty, no tables), one network inline (its family
    /// matters: IPNetwork.contains never matches across families, and an IPv6 network may
    /// cover the IPv4-mapped addresses), only in the full rule, or one table reference alone,
    /// plain or negated (its table position in the `bits` field). The kinds from `inRule` on
    /// are not settled by a prefix comparison.
    private enum AddressKind: UInt8 {
        case any, ipv4Network, ipv6Network, inRule, table, negatedTable
    }

    private var sourceHigh: UInt64 = 0
    private var sourceLow: UInt64 = 0
    private var destinationHigh: UInt64 = 0
    private var destinationLow: UInt64 = 0
    /// The prefix length of an inline network, in bits of the 128-bit (IPv4-mapped) form.
    private var sourceBits: UInt8 = 0
    private var destinationBits: UInt8 = 0
    private var sourceKind = AddressKind.any
    private var destinationKind = AddressKind.any
    /// RuleIndex.bucket of the rule's direction and protocol.
    private var bucket: UInt8 = 0
    /// More than two port ranges: the inline ranges are all ports, the rule decides.
    private var portsInRule = false
    /// The port ranges; a rule with one has it twice.
    private var portLower: UInt16 = 0
    private var portUpper: UInt16 = .max
    private var secondPortLower: UInt16 = 0
    private var secondPortUpper: UInt16 = .max
    /// The rule's action, read by the decision from the line the match just read rather than
    /// from the rule (another line, cold among many rules); its raw value, since a public enum
    /// is not BitwiseCopyable.
    private var actionValue: UInt8 = 0
    /// To 64 bytes, so that a record never straddles two lines.
    private var padding: (UInt8, UInt16, UInt64) = (0, 0, 0)

    init(_ rule: Rule) {
        bucket = UInt8(RuleIndex.bucket(rule.direction, rule.protocolName))
        actionValue = rule.action.rawValue
        // `Rule.matches` checks the ports of every rule that has some (ICMP rules have none).
        if rule.ports.count == 1 || rule.ports.count == 2 {
            portLower = rule.ports[0].lower
            portUpper = rule.ports[0].upper
            secondPortLower = rule.ports[rule.ports.count - 1].lower
            secondPortUpper = rule.ports[rule.ports.count - 1].upper
        } else if rule.ports.count > 2 {
            portsInRule = true
        }
        (sourceKind, sourceBits, sourceHigh, sourceLow) = RuleMatchRecord.inline(rule.from, rule.fromTables)
        (destinationKind, destinationBits, destinationHigh, destinationLow) = RuleMatchRecord.inline(rule.to, rule.toTables)
    }

    var action: RuleAction {
        // Written from a RuleAction at init: always a valid raw value.
        RuleAction(rawValue: actionValue)!
    }

    private static func inline(_ networks: [IPNetwork], _ tables: [TableReference])
        -> (kind: AddressKind, bits: UInt8, high: UInt64, low: UInt64) {
        if networks.isEmpty && tables.isEmpty { return (.any, 0, 0, 0) }
        // TableAnswers holds answers for table positions below 64 only.
        if networks.isEmpty, tables.count == 1, tables[0].index < 64 {
            return (tables[0].negated ? .negatedTable : .table, UInt8(tables[0].index), 0, 0)
        }
        guard networks.count == 1, tables.isEmpty else { return (.inRule, 0, 0, 0) }
        let network = networks[0]
        // IPNetwork stores its address masked, so comparing the first `bits` bits is `contains`.
        let bits = network.isIPv4 ? 96 + network.prefixLength : network.prefixLength
        return (network.isIPv4 ? .ipv4Network : .ipv6Network, UInt8(bits), network.address.high, network.address.low)
    }

    /// Whether an address of this family (`isIPv4`) lies in the inline network: the same
    /// answer as IPNetwork.contains.
    @inline(__always)
    private static func contains(_ kind: AddressKind, _ bits: UInt8, _ high: UInt64, _ low: UInt64,
                                 _ address: IPAddress, _ isIPv4: Bool) -> Bool {
        guard (kind == .ipv4Network) == isIPv4 else { return false }
        let bits = UInt64(bits)
        // Shifts of 64 and more give 0 (Swift's `>>`): every bit of that word is compared.
        let highMask = ~(UInt64.max >> bits)
        let lowMask = bits <= 64 ? 0 : ~(UInt64.max >> (bits - 64))
        return (address.high ^ high) & highMask == 0 && (address.low ^ low) & lowMask == 0
    }

    /// What a table reference held inline (`kind` `table` or `negatedTable`, its position in
    /// `bits`) says of `address`, by the flow's answer from the batch warm-up: `.passes` when
    /// it matches, `.fails` when not, `.checkRule` without an answer. Out of line: `answer` is
    /// inlined into RuleIndex.first's loop, which stays as small as without tables.
    @inline(never)
    private static func tableAnswer(_ kind: AddressKind, _ bits: UInt8, _ address: IPAddress, bySource: Bool,
                                    _ answers: UnsafePointer<TableAnswers>?) -> Answer {
        guard let answers, let contained = answers.pointee.answer(position: Int(bits), address: address, bySource: bySource)
        else { return .checkRule }
        return contained != (kind == .negatedTable) ? .passes : .fails
    }

    /// What one side's inline fields say of `address`: `.passes` for any address or a network
    /// it is in, `.fails` for one it is not in, and for a list held in the rule alone or a table
    /// the flow's `answers` do not answer for, `.checkRule`.
    @inline(__always)
    private static func sideAnswer(_ kind: AddressKind, _ bits: UInt8, _ high: UInt64, _ low: UInt64,
                                   _ address: IPAddress, _ isIPv4: Bool, bySource: Bool,
                                   _ answers: UnsafePointer<TableAnswers>?) -> Answer {
        if kind.rawValue >= AddressKind.inRule.rawValue {
            // Held in the rule, or a table: the flow's answer may settle the table here.
            return kind == .inRule ? .checkRule : tableAnswer(kind, bits, address, bySource: bySource, answers)
        }
        return kind == .any || contains(kind, bits, high, low, address, isIPv4) ? .passes : .fails
    }

    /// What the inline fields say of a new flow in `bucket` (RuleIndex.bucket); `checkRule`
    /// only when none of them rules it out and one of them is held in the rule alone, or is a
    /// table the flow's `answers` (TableAnswers, the batch warm-up's) do not answer for.
    @inline(__always)
    func answer(bucket: Int, source: IPAddress, sourceIsIPv4: Bool, destination: IPAddress,
                destinationIsIPv4: Bool, destinationPort: UInt16,
                answers: UnsafePointer<TableAnswers>? = nil) -> Answer {
        guard Int(self.bucket) == bucket,
              (destinationPort >= portLower && destinationPort <= portUpper)
                || (destinationPort >= secondPortLower && destinationPort <= secondPortUpper) else { return .fails }
        var inRule = portsInRule
        switch RuleMatchRecord.sideAnswer(sourceKind, sourceBits, sourceHigh, sourceLow, source, sourceIsIPv4,
                                          bySource: true, answers) {
        case .fails: return .fails
        case .checkRule: inRule = true
        case .passes: break
        }
        switch RuleMatchRecord.sideAnswer(destinationKind, destinationBits, destinationHigh, destinationLow,
                                          destination, destinationIsIPv4, bySource: false, answers) {
        case .fails: return .fails
        case .checkRule: inRule = true
        case .passes: break
        }
        return inRule ? .checkRule : .passes
    }
}
