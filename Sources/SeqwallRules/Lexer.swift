import SeqwallCore

/// One token of a rule file, with where it starts and ends on its line.
struct Token: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// Keywords, numbers, addresses, networks, ranges, durations, rates: anything unquoted.
        case word
        /// A "quoted string"; `text` holds what is between the quotes.
        case string
        case comma
        /// `{` and `}`, around a table's entries.
        case openBrace
        case closeBrace
    }

    let kind: Kind
    let text: String
    let line: Int
    /// 1-based column of the first character, counted in characters (Unicode scalars).
    let column: Int
    /// The column just after the last character; where "missing argument" errors point.
    let endColumn: Int

    /// The token as an error message quotes it, cut short like every quoted token.
    var display: String {
        switch kind {
        case .word: quoted(text)
        case .string: quoted(text, mark: "\"")
        case .comma: "','"
        case .openBrace: "'{'"
        case .closeBrace: "'}'"
        }
    }
}

/// Longest stretch of a file an error message repeats. Messages go to the terminal and, on a
/// reload, to the journal: an `include` of a file that is not a rule file (a key, a password
/// database) must not copy it there, so no message quotes more of any token than this.
let maximumQuotedLength = 24

/// `'text'`, cut to `maximumQuotedLength` characters with an ellipsis when longer.
func quoted(_ text: some StringProtocol, mark: Character = "'") -> String {
    let shown = text.count > maximumQuotedLength ? text.prefix(maximumQuotedLength) + "…" : String(text)
    return "\(mark)\(shown)\(mark)"
}

/// The tokens of one source line, or the error that stopped the lexer on that line.
struct LexedLine: Sendable {
    let number: Int
    let tokens: [Token]
    let error: RuleError?
}

/// Splits UTF-8 text into tokens one line at a time, so a large file never has all its tokens in
/// memory at once and an error on one line does not stop the lines after it from being read.
///
/// The language is line-oriented: a statement is exactly one line, `#` starts a comment that runs
/// to the end of the line, and a word is any run of printable ASCII other than `,`, `#`, `"`, `{`
/// and `}`. That makes `203.0.113.0/24`, `2001:db8::/64`, `8000-8100`, `20/s`, `syn-sent`,
/// `<drop>` and `!198.51.100.7` single words;
/// the parser takes them apart and can point at the exact character that is wrong.
struct Lexer {
    let file: String
    private let bytes: [UInt8]
    private var offset: Int
    private var lineNumber = 0

    /// `bytes` must be valid UTF-8 (see `firstInvalidUTF8`): columns count scalars.
    /// `firstLine` numbers the first line of `bytes`, for one line lexed apart from its file.
    init(bytes: [UInt8], file: String, firstLine: Int = 1) {
        self.bytes = bytes
        self.file = file
        lineNumber = firstLine - 1
        offset = firstLine == 1 && bytes.starts(with: byteOrderMark) ? byteOrderMark.count : 0
    }

    /// The next line, or nil after the last one. A final line without a newline still counts.
    mutating func nextLine() -> LexedLine? {
        guard offset < bytes.count else { return nil }
        lineNumber += 1
        var tokens: [Token] = []
        var column = 1
        while offset < bytes.count, bytes[offset] != ASCII.newline {
            let byte = bytes[offset]
            switch byte {
            case ASCII.space, ASCII.tab, ASCII.carriageReturn, ASCII.verticalTab, ASCII.formFeed:
                offset += 1
                column += 1
            case ASCII.hash:
                skipRestOfLine()
            case ASCII.comma, ASCII.openBrace, ASCII.closeBrace:
                let kind: Token.Kind = byte == ASCII.comma ? .comma : byte == ASCII.openBrace ? .openBrace : .closeBrace
                tokens.append(Token(kind: kind, text: String(UnicodeScalar(byte)), line: lineNumber, column: column,
                                    endColumn: column + 1))
                offset += 1
                column += 1
            case ASCII.quote:
                let start = column
                offset += 1
                column += 1
                let contentStart = offset
                while offset < bytes.count, bytes[offset] != ASCII.quote, bytes[offset] != ASCII.newline {
                    // A control character in a file name is never intended, and a NUL would cut
                    // the name short when it reaches the C library.
                    if bytes[offset] < 0x20 || bytes[offset] == 0x7F {
                        return failedLine(tokens, at: column, unexpectedCharacterMessage() + " in string")
                    }
                    if !UTF8.isContinuation(bytes[offset]) { column += 1 }
                    offset += 1
                }
                guard offset < bytes.count, bytes[offset] == ASCII.quote else {
                    return failedLine(tokens, at: start, "unterminated string")
                }
                let text = String(decoding: bytes[contentStart..<offset], as: UTF8.self)
                offset += 1
                column += 1
                tokens.append(Token(kind: .string, text: text, line: lineNumber, column: start, endColumn: column))
            case _ where Lexer.isWordByte(byte):
                let start = column
                let startOffset = offset
                while offset < bytes.count, Lexer.isWordByte(bytes[offset]) {
                    offset += 1
                    column += 1
                }
                let text = String(decoding: bytes[startOffset..<offset], as: UTF8.self)
                tokens.append(Token(kind: .word, text: text, line: lineNumber, column: start, endColumn: column))
            default:
                return failedLine(tokens, at: column, unexpectedCharacterMessage())
            }
        }
        if offset < bytes.count { offset += 1 }  // the newline itself
        return LexedLine(number: lineNumber, tokens: tokens, error: nil)
    }

    /// Printable ASCII except the characters that end a word.
    static func isWordByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F && byte != ASCII.comma && byte != ASCII.hash && byte != ASCII.quote
            && byte != ASCII.openBrace && byte != ASCII.closeBrace
    }

    private mutating func skipRestOfLine() {
        while offset < bytes.count, bytes[offset] != ASCII.newline { offset += 1 }
    }

    private mutating func failedLine(_ tokens: [Token], at column: Int, _ message: String) -> LexedLine {
        let error = RuleError(location: SourceLocation(file: file, line: lineNumber, column: column), message: message)
        skipRestOfLine()
        if offset < bytes.count { offset += 1 }
        return LexedLine(number: lineNumber, tokens: tokens, error: error)
    }

    /// Names the character at `offset`: its glyph when it has a visible one, always its code point,
    /// because a no-break space or a zero-width joiner looks like nothing at all.
    private func unexpectedCharacterMessage() -> String {
        let lead = bytes[offset]
        let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        let end = min(offset + length, bytes.count)
        guard let scalar = String(decoding: bytes[offset..<end], as: UTF8.self).unicodeScalars.first else {
            return "unexpected character"
        }
        let hex = String(scalar.value, radix: 16, uppercase: true)
        let codePoint = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        switch scalar.properties.generalCategory {
        case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .privateUse,
             .surrogate, .unassigned, .nonspacingMark, .enclosingMark, .spacingMark:
            return "unexpected character \(codePoint)"
        default:
            return "unexpected character '\(Character(scalar))' (\(codePoint))"
        }
    }
}

/// Where the first byte that is not valid UTF-8 sits, as a line and column, or nil when the
/// whole buffer is valid. Rule files are text; rather than guess at a mangled byte, the loader
/// refuses the file and shows where the damage starts.
func firstInvalidUTF8(in bytes: [UInt8]) -> (line: Int, column: Int)? {
    var parser = Unicode.UTF8.ForwardParser()
    // Columns as the lexer counts them, which does not count a byte order mark.
    var iterator = bytes.dropFirst(bytes.starts(with: byteOrderMark) ? byteOrderMark.count : 0).makeIterator()
    var line = 1
    var column = 1
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let encoded):
            if encoded.count == 1, encoded.first == ASCII.newline {
                line += 1
                column = 1
            } else {
                column += 1
            }
        case .error:
            return (line, column)
        case .emptyInput:
            return nil
        }
    }
}

/// What some editors put at the start of a UTF-8 file; not part of the text.
let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

enum ASCII {
    static let newline: UInt8 = 0x0A
    static let tab: UInt8 = 0x09
    static let verticalTab: UInt8 = 0x0B
    static let formFeed: UInt8 = 0x0C
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let hash: UInt8 = 0x23
    static let comma: UInt8 = 0x2C
    static let exclamation: UInt8 = 0x21
    static let dot: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39
    static let openBrace: UInt8 = 0x7B
    static let closeBrace: UInt8 = 0x7D
}
