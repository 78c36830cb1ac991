/// An inclusive port range; a single port has `lower == upper`.
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public let lower: UInt16
    public let upper: UInt16

    public init(_ lower: UInt16, _ upper: UInt16) {
        self.lower = lower
        self.upper = upper
    }

    public init(_ port: UInt16) { self.init(port, port) }

    public func contains(_ port: UInt16) -> Bool { port >= lower && port <= upper }

    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}
