/// Which way a new connection goes relative to the protected side.
public enum Direction: UInt8, Sendable, CustomStringConvertible {
    case inbound
    case outbound

    public var description: String { self == .inbound ? "in" : "out" }
}
