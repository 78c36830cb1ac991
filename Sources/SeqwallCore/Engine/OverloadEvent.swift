/// A source that went over a per-source connection limit with `overload` (seqwall.rules(5),
/// limit conn): what the owner of the tracker must add to which table, and what to flush.
/// A plain value with no references, so a worker can hand it to another thread through a
/// ring of preallocated slots.
public struct OverloadEvent: Sendable, Equatable {
    /// The source as it was counted: an IPv4 address, or an IPv6 /64.
    public var source: IPNetwork
    /// The table's position in the tracker's policy, and a hash of its name: the policy may
    /// have been replaced (and positions moved) before the event is read.
    public var tableIndex: Int32
    public var tableNameHash: UInt64
    /// 0: no `expire`.
    public var expireSeconds: UInt32
    public var flush: Bool
    /// Which limit: 0 for a global one, else the id of the rule (`removeConnections(overloadedBy:)`).
    public var scope: UInt32
    public var reason: DropReason

    /// FNV-1a of the name's UTF-8: no allocation, so the packet path may compute it.
    public static func hash(ofTableName name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
