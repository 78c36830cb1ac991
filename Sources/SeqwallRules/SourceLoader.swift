import SeqwallCore

/// Reads a rule file and everything it includes, in one pass in file order: each line is lexed,
/// parsed and handed to the checker before the next is read, and an `include` reads its file right
/// there. Errors therefore come out in the order an operator reads the files, and memory stays
/// bounded by the limits below however large or broken the input is.
struct SourceLoader {
    static let maximumFileSize = 16 << 20
    /// Includes below the top-level file.
    static let maximumIncludeDepth = 16
    /// Bounds the work of a file that includes another many times (which may include another
    /// many times...): legal, but it multiplies.
    static let maximumTotalSize = 64 << 20
    static let maximumFileCount = 4096
    /// A table file: room for a few million prefixes, one a line.
    static let maximumTableFileSize = 256 << 20

    /// Relative paths are opened relative to this; messages still show them as written.
    private let baseDirectory: String?
    private(set) var diagnostics = Diagnostics()
    private var checker = Checker()
    /// The file being read, the file that included it, and so on up to the top; for loops.
    private var includeChain: [(displayPath: String, identity: FileIdentity?)] = []
    private var totalSize = 0
    private var fileCount = 0

    /// `tableRegionProvider`: see Checker.
    init(baseDirectory: String?, tableRegionProvider: RegionProvider? = nil) {
        self.baseDirectory = baseDirectory
        checker.tableRegionProvider = tableRegionProvider
    }

    /// Reads the top-level file from disk. A file that cannot be read is reported at its 1:1.
    mutating func load(path: String) {
        switch FileReader.read(path: openablePath(path), limit: SourceLoader.maximumFileSize) {
        case .failure(let failure):
            diagnostics.report(at: SourceLocation(file: path, line: 1, column: 1), "cannot read file: \(failure.reason)")
        case .success(let contents):
            process(contents.bytes, displayPath: path, identity: contents.identity)
        }
    }

    /// Takes the top-level text from memory; it still may include files from disk.
    mutating func load(bytes: [UInt8], displayPath: String) {
        process(bytes, displayPath: displayPath, identity: FileReader.identity(ofPath: openablePath(displayPath)))
    }

    func policy() throws(RuleErrors) -> Policy {
        guard diagnostics.isEmpty else { throw RuleErrors(errors: diagnostics.errors) }
        return checker.result
    }

    /// The warnings of what was read; meaningful once `policy()` returned.
    var warnings: [RuleWarning] { checker.warnings }

    private mutating func process(_ bytes: [UInt8], displayPath: String, identity: FileIdentity?) {
        fileCount += 1
        totalSize += bytes.count
        if let (line, column) = firstInvalidUTF8(in: bytes) {
            diagnostics.report(at: SourceLocation(file: displayPath, line: line, column: column), "file is not valid UTF-8")
            return
        }
        includeChain.append((displayPath, identity))
        defer { includeChain.removeLast() }
        var lexer = Lexer(bytes: bytes, file: displayPath)
        while !diagnostics.isFull, let line = lexer.nextLine() {
            if Parser.startsNoStatement(line) {
                // Reading on would quote more of a file that may be anything (an include of a
                // key or a password database): one error, its token cut short, and stop.
                stopReading(at: line, file: displayPath)
                return
            }
            if let error = line.error {
                diagnostics.report(error)
                continue
            }
            do throws(RuleError) {
                guard let statement = try Parser.parse(line, file: displayPath) else { continue }
                if case .include(let path, let location) = statement {
                    include(path, at: location, from: displayPath)
                } else if case .table(let table) = statement {
                    var entries: [TableEntry] = []
                    for file in table.files where !diagnostics.isFull {
                        readTable(file.path, at: file.location, from: displayPath, into: &entries)
                    }
                    checker.define(table, fileEntries: entries, &diagnostics)
                } else {
                    checker.check(statement, &diagnostics)
                }
            } catch {
                diagnostics.report(error)
            }
        }
    }

    /// Reports the line that is not a rule as the parser sees it, saying the file ends there.
    private mutating func stopReading(at line: LexedLine, file: String) {
        var problem = line.error
        if problem == nil {
            do throws(RuleError) { _ = try Parser.parse(line, file: file) } catch { problem = error }
        }
        guard let problem else { return }
        diagnostics.report(at: problem.location, problem.message + "; not a rule, so the rest of this file is not read")
    }

    private mutating func include(_ path: String, at location: SourceLocation, from includingFile: String) {
        // Relative to the including file's directory, as C and pf do; joined as text so that
        // messages name the file the way the operator would reach it from where they stand.
        let displayPath = path.hasPrefix("/") ? path : directoryPrefix(of: includingFile) + path
        if includeChain.count > SourceLoader.maximumIncludeDepth {
            diagnostics.report(at: location, "includes nested too deeply (more than \(SourceLoader.maximumIncludeDepth) levels)")
            return
        }
        if fileCount >= SourceLoader.maximumFileCount {
            diagnostics.report(at: location, "too many included files (more than \(SourceLoader.maximumFileCount))")
            return
        }
        let contents: FileReader.Contents
        switch FileReader.read(path: openablePath(displayPath), limit: SourceLoader.maximumFileSize) {
        case .failure(let failure):
            diagnostics.report(at: location, "cannot read included file \"\(displayPath)\": \(failure.reason)")
            return
        case .success(let read):
            contents = read
        }
        if let start = includeChain.firstIndex(where: { $0.identity == contents.identity }) {
            let cycle = includeChain[start...].map(\.displayPath) + [displayPath]
            diagnostics.report(at: location, "include loop: " + cycle.joined(separator: " -> "))
            return
        }
        if totalSize + contents.bytes.count > SourceLoader.maximumTotalSize {
            diagnostics.report(at: location, "rule files add up to more than \(SourceLoader.maximumTotalSize >> 20) MiB")
            return
        }
        process(contents.bytes, displayPath: displayPath, identity: contents.identity)
    }

    /// The entries of a table file (`table <name> file "FILE"`), each checked as it is read; bad
    /// lines are reported at their own file, line and column. The path is resolved as an
    /// include's is.
    private mutating func readTable(_ path: String, at location: SourceLocation, from includingFile: String,
                                    into entries: inout [TableEntry]) {
        let displayPath = path.hasPrefix("/") ? path : directoryPrefix(of: includingFile) + path
        if fileCount >= SourceLoader.maximumFileCount {
            diagnostics.report(at: location, "too many included files (more than \(SourceLoader.maximumFileCount))")
            return
        }
        let bytes: [UInt8]
        switch FileReader.read(path: openablePath(displayPath), limit: SourceLoader.maximumTableFileSize) {
        case .failure(let failure):
            diagnostics.report(at: location, "cannot read table file \"\(displayPath)\": \(failure.reason)")
            return
        case .success(let read):
            bytes = read.bytes
        }
        fileCount += 1
        scanTable(bytes, displayPath: displayPath, into: &entries)
    }

    /// The entries of a table's text, one a line; bad lines reported at `displayPath`, their
    /// line and column. `firstLineDecides`: a first line that is no address stops the reading
    /// (a file that may be anything, see below); off for text that is meant to be addresses.
    mutating func scanTable(_ bytes: [UInt8], displayPath: String, firstLineDecides: Bool = true,
                            into entries: inout [TableEntry]) {
        if let (line, column) = firstInvalidUTF8(in: bytes) {
            diagnostics.report(at: SourceLocation(file: displayPath, line: line, column: column), "file is not valid UTF-8")
            return
        }
        var sawEntry = !firstLineDecides
        var lineStart = bytes.startIndex
        var lineNumber = 0
        while !diagnostics.isFull, lineStart < bytes.endIndex {
            let lineEnd = bytes[lineStart...].firstIndex(of: ASCII.newline) ?? bytes.endIndex
            let line = bytes[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            lineNumber += 1
            switch TableLineScanner.scan(line) {
            case .blank:
                continue
            case .entry(let entry):
                sawEntry = true
                entries.append(entry)
                continue
            case .other:
                break
            }
            var lexer = Lexer(bytes: Array(line), file: displayPath, firstLine: lineNumber)
            guard let lexed = lexer.nextLine() else { continue }
            do throws(RuleError) {
                if let error = lexed.error { throw error }
                guard let literal = try Parser.tableFileEntry(lexed, file: displayPath) else { continue }
                sawEntry = true
                if let entry = checker.tableEntry(literal, &diagnostics) { entries.append(entry) }
            } catch {
                guard sawEntry else {
                    // As with an include: a file whose first line is no address may be anything
                    // (a key, a password database), so one error with its token cut short, and stop.
                    diagnostics.report(at: error.location,
                                       error.message + "; not a table file, so the rest of this file is not read")
                    return
                }
                diagnostics.report(error)
            }
        }
    }

    /// A table file read on its own, as `seqwall table NAME replace FILE` does.
    mutating func loadTable(path: String) -> [TableEntry] {
        var entries: [TableEntry] = []
        readTable(path, at: SourceLocation(file: path, line: 1, column: 1), from: "", into: &entries)
        return entries
    }

    /// Everything up to and including the last slash; "" for a bare file name.
    private func directoryPrefix(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[...slash])
    }

    private func openablePath(_ displayPath: String) -> String {
        guard let base = baseDirectory, !base.isEmpty, !displayPath.hasPrefix("/") else { return displayPath }
        return base.hasSuffix("/") ? base + displayPath : base + "/" + displayPath
    }
}
