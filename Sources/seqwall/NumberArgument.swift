import ArgumentParser

/// Parses the value of a numeric option. Such options are declared with `parsing:
/// .unconditional`, so that `--sport -1` reaches here as a value (swift-argument-parser would
/// otherwise read `-1` as an option and report a "Missing value"), and the error names the
/// numbers allowed instead of calling the value invalid.
enum NumberArgument {
    static func parser<Value: FixedWidthInteger & Sendable>(_ range: ClosedRange<Value>)
        -> @Sendable (String) throws -> Value {
        { text in
            guard let value = Value(text), range.contains(value) else {
                throw ValidationError("use a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        }
    }
}
