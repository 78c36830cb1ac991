/// Which of the kernel's flag classes a segment belongs to (enum tcp_bit_set): the row of the
/// transition table.
public enum TCPFlagIndex: UInt8, Sendable {
    case syn = 0
    case synAck = 1
    case fin = 2
    case ack = 3
    case rst = 4
    case none = 5

    public init(_ flags: TCPFlags) {
        if flags.contains(.rst) { self = .rst }
        else if flags.contains(.syn) { self = flags.contains(.ack) ? .synAck : .syn }
        else if flags.contains(.fin) { self = .fin }
        else if flags.contains(.ack) { self = .ack }
        else { self = .none }
    }
}
