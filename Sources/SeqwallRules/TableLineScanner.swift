import SeqwallCore

/// Reads the commonest line of a table file, a plain IPv4 address or network (`198.51.100.0/24`,
/// `!198.51.100.7`, maybe with a comment), straight from its bytes, so that a list of millions of
/// prefixes does not make a token, a literal and a message context for every line. Anything else, even a valid IPv6 entry or an unusual
/// spelling, is `.other` and goes through the lexer, parser and checker, which accept or refuse
/// it with a located message: this only ever accepts lines those would accept as the same entry.
enum TableLineScanner {
    enum Line {
        /// Only white space and maybe a comment.
        case blank
        case entry(TableEntry)
        case other
    }

    static func scan(_ line: ArraySlice<UInt8>) -> Line {
        var index = line.startIndex
        let end = line.endIndex
        func isSpace(_ byte: UInt8) -> Bool {
            byte == ASCII.space || byte == ASCII.tab || byte == ASCII.carriageReturn || byte == ASCII.verticalTab
                || byte == ASCII.formFeed
        }
        while index < end, isSpace(line[index]) { index += 1 }
        if index == end || line[index] == ASCII.hash { return .blank }
        let negated = line[index] == ASCII.exclamation
        if negated { index += 1 }
        // A decimal number without a leading zero, at most `maximum`.
        func number(maximum: UInt32) -> UInt32? {
            let start = index
            var value: UInt32 = 0
            while index < end, line[index] >= ASCII.zero, line[index] <= ASCII.nine, index - start < 3 {
                value = value * 10 + UInt32(line[index] - ASCII.zero)
                index += 1
            }
            guard index > start, value <= maximum, !(line[start] == ASCII.zero && index - start > 1) else { return nil }
            return value
        }
        var address: UInt32 = 0
        for octet in 0..<4 {
            if octet > 0 {
                guard index < end, line[index] == ASCII.dot else { return .other }
                index += 1
            }
            guard let value = number(maximum: 255) else { return .other }
            address = address << 8 | value
        }
        var prefixLength: UInt32 = 32
        if index < end, line[index] == ASCII.slash {
            index += 1
            guard let value = number(maximum: 32) else { return .other }
            prefixLength = value
        }
        while index < end, isSpace(line[index]) { index += 1 }
        guard index == end || line[index] == ASCII.hash else { return .other }
        let network = IPNetwork(address: IPAddress(ipv4: address), prefixLength: Int(prefixLength))
        // Host bits set: the checker's message says which network was meant.
        guard network.address.ipv4Value == address else { return .other }
        return .entry(TableEntry(network, negated: negated))
    }
}
