/// Which NFQUEUE queues a firewall ruleset sends packets to, read from the text of
/// `nft list ruleset` or `iptables-save`/`ip6tables-save`: how the daemon tells a queue that
/// nothing is diverted to (seqwall would see nothing, and protect nothing) from a quiet one.
///
/// It errs toward "diverted": a rule whose queue number it cannot work out (an nft `queue to`
/// a hash or map, an `xt target "NFQUEUE"` that nft cannot translate) counts as sending to
/// every queue, so a warning is never given for a queue that may be fed.
public enum DiversionRules {
    public static let everyQueue: ClosedRange<UInt16> = 0...UInt16.max

    /// The queue ranges of `-j NFQUEUE` rules (`--queue-num N`, `--queue-balance A:B`, or
    /// queue 0 with neither, as xt_NFQUEUE defaults).
    public static func iptablesQueues(_ text: String) -> [ClosedRange<UInt16>] {
        var ranges: [ClosedRange<UInt16>] = []
        for line in text.split(separator: "\n") where line.hasPrefix("-A ") {
            let words = line.split(separator: " ")
            guard let jump = words.firstIndex(where: { $0 == "-j" || $0 == "--jump" }),
                  jump + 1 < words.count, words[jump + 1] == "NFQUEUE" else { continue }
            var range: ClosedRange<UInt16> = 0...0
            for (index, word) in words.enumerated() where index + 1 < words.count {
                if word == "--queue-num" {
                    range = UInt16(words[index + 1]).map { $0...$0 } ?? everyQueue
                } else if word == "--queue-balance" {
                    range = span(words[index + 1], separator: ":") ?? everyQueue
                }
            }
            ranges.append(range)
        }
        return ranges
    }

    /// The queue ranges of nft `queue` statements: `queue`, `queue num N [bypass] [fanout]`,
    /// `queue num A-B`, `queue flags bypass,fanout to A-B`, `queue to N`.
    public static func nftQueues(_ text: String) -> [ClosedRange<UInt16>] {
        var ranges: [ClosedRange<UInt16>] = []
        for rawLine in text.split(separator: "\n") {
            let line = withoutQuotedText(rawLine)
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first, !["table", "chain", "set", "map", "type", "flowtable"].contains(String(first))
            else { continue }
            if line.contains("xt target") && rawLine.contains("NFQUEUE") {
                ranges.append(everyQueue)
                continue
            }
            for (start, word) in words.enumerated() where word == "queue" {
                var range: ClosedRange<UInt16> = 0...0
                var index = start + 1
                scan: while index < words.count {
                    switch words[index] {
                    case "flags":
                        index += 2
                    case "num", "to":
                        guard index + 1 < words.count else { break scan }
                        range = span(words[index + 1], separator: "-") ?? everyQueue
                        index += 2
                    case "bypass", "fanout", "fanout,bypass", "bypass,fanout":
                        index += 1
                    default:
                        break scan
                    }
                }
                ranges.append(range)
            }
        }
        return ranges
    }

    /// `N` or `A<separator>B`, lower first.
    static func span(_ text: Substring, separator: Character) -> ClosedRange<UInt16>? {
        let parts = text.split(separator: separator, omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let lower = UInt16(parts[0]),
              let upper = UInt16(parts[parts.count - 1]), lower <= upper else { return nil }
        return lower...upper
    }

    /// The line with "..." strings (comments, names) blanked, so a word in them is no statement.
    static func withoutQuotedText(_ line: Substring) -> String {
        var result = ""
        var quoted = false
        for character in line {
            if character == "\"" { quoted.toggle(); result.append(" "); continue }
            result.append(quoted ? " " : character)
        }
        return result
    }
}
