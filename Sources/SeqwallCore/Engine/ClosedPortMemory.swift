/// The server ports the SYN proxy has seen refuse a proxied handshake (docs/synproxy.md,
/// "Closed ports"). A proxy that answers every SYN with a cookie makes a closed port look open
/// to the first SYN; once the server's RST has shown the port closed, later SYNs to it are
/// passed to the server unproxied, so its own RST reaches the client and a SYN scan sees the
/// port as it is. A closed port's RST costs the server no backlog, so passing SYNs to it
/// does not weaken the flood defence.
///
/// Direct-mapped and fixed-size, allocated once with the proxy's side table: nothing is
/// allocated per packet. A collision overwrites the older mark, which only makes that port's
/// next SYN proxied again: the proxy's ordinary behaviour, never a wrong verdict. Entries
/// are made only from the server's RST to a handshake seqwall itself opened after a valid
/// cookie, so spoofed SYNs cannot fill it.
final class ClosedPortMemory {
    /// How long a refusal is remembered: long enough to cover a scan and a client's
    /// retransmitted SYNs, short enough that a server that stops refusing without being asked
    /// (no SYN reached it) has its SYNs proxied again soon. A port that opens while marked is
    /// forgotten at once, from its first SYN-ACK (`forget`).
    static let holdTime: UInt64 = 60 * 1_000_000_000
    /// Entries: a power of two. Each is 32 bytes, 32 KiB in all per tracker.
    static let capacity = 1024

    struct Entry {
        var address: IPAddress
        var port: UInt16
        /// 0: empty.
        var expiresAt: UInt64
    }

    private let entries: UnsafeMutablePointer<Entry>

    init() {
        entries = .allocate(capacity: ClosedPortMemory.capacity)
        entries.initialize(repeating: Entry(address: IPAddress(high: 0, low: 0), port: 0, expiresAt: 0),
                           count: ClosedPortMemory.capacity)
    }

    deinit { entries.deallocate() }

    /// The entry an address and port map to. Unkeyed: who can make entries at all must have
    /// completed a cookie handshake, and a collision costs nothing but a proxied SYN.
    private func position(_ address: IPAddress, _ port: UInt16) -> Int {
        var mixed = address.high ^ (address.low &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(port)
        mixed = (mixed ^ (mixed >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: mixed >> 32) & (ClosedPortMemory.capacity - 1)
    }

    /// Marks `port` on `address` closed from `now` for `holdTime`.
    func remember(_ address: IPAddress, port: UInt16, now: UInt64) {
        entries[position(address, port)] = Entry(address: address, port: port,
                                                 expiresAt: now &+ ClosedPortMemory.holdTime)
    }

    /// Whether `port` on `address` is marked closed at `now`.
    func isClosed(_ address: IPAddress, port: UInt16, now: UInt64) -> Bool {
        let entry = entries[position(address, port)]
        return entry.expiresAt > now && entry.port == port && entry.address == address
    }

    /// Drops the mark of `port` on `address`, if it has one: the server answered a SYN there.
    func forget(_ address: IPAddress, port: UInt16) {
        let slot = entries + position(address, port)
        if slot.pointee.port == port && slot.pointee.address == address { slot.pointee.expiresAt = 0 }
    }
}
