/// The two directions of a connection, as the kernel numbers them (IP_CT_DIR_ORIGINAL/REPLY).
public enum FlowDirection: UInt8, Sendable {
    case original = 0
    case reply = 1

    public var opposite: FlowDirection { self == .original ? .reply : .original }
}
