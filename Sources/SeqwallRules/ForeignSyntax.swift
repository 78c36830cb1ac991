/// Words of pf.conf(5) and nft(8) rules that seqwall's language has no place for, each with what
/// to write instead. Operators bring rule files and habits from those tools; "expected 'from',
/// found 'quick'" tells them nothing, the hint tells them what seqwall means.
enum ForeignSyntax {
    /// A hint for `word` met where a rule expects its protocol or a clause; nil for other words.
    static func hint(forRuleWord word: String) -> String? {
        switch word {
        case "quick":
            "seqwall's rules are first match: every rule is pf's 'quick'; leave it out"
        case "on":
            "seqwall does not match interfaces; match addresses with 'from' and 'to' (and 'inside' in gateway mode)"
        case "inet", "inet6":
            "a rule is for both families unless its addresses say which; leave '\(word)' out"
        case "log":
            "drops are logged by 'set drop-log off|sampled|full'; leave 'log' out"
        case "keep", "modulate", "state":
            "seqwall tracks the state of every connection a 'pass' rule lets in; leave '\(word) state' out"
        case "flags":
            "seqwall checks every TCP packet's flags against the connection's state; leave 'flags' out"
        case "drop":
            "a 'block' rule drops; leave 'drop' out"
        case "return":
            "seqwall's refusing action is 'reject' (a TCP RST or an ICMP port unreachable): write 'reject in|out ...'"
        default:
            nil
        }
    }

    /// A hint for a port written in pf's or nft's way: `{ 22 80 }`, `= 22`, `22:80`.
    static func hint(forPort text: String) -> String? {
        switch text {
        case "{": return "write the ports as a list with commas: 'port 22, 80'"
        case "=": return "write the port alone: 'port 22'"
        default:
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) else { return nil }
            return "write a port range with a dash: '\(parts[0])-\(parts[1])'"
        }
    }
}
