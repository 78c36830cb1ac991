/// The IPv4 broadcast addresses of this namespace's interfaces (the subnets' first and last
/// addresses, and any broadcast address given), so that a rejected packet sent
/// to a subnet's broadcast address gets no answer: the kernel's REJECT never answers one
/// (nf_send_reset and icmp_send test the route for RTCF_BROADCAST), RFC 1122 3.2.2 forbids an
/// ICMP error for it, and an answer would have to come from the broadcast address. NFQUEUE
/// does not say how a packet was addressed, so the interfaces are asked (getifaddrs), at most
/// once a second and only when a reject is to be answered: never on the packet path proper.
struct LocalBroadcasts {
    static let refreshInterval: UInt64 = 1_000_000_000

    private var addresses: [UInt32] = []
    private var readAt: UInt64 = 0
    private var read = false

    /// Whether `address` (host order) is a broadcast address of an interface, as of at most a
    /// second ago.
    mutating func contains(_ address: UInt32, now: UInt64) -> Bool {
        if !read || now &- readAt >= LocalBroadcasts.refreshInterval {
            addresses = SystemCall.ipv4BroadcastAddresses()
            readAt = now
            read = true
        }
        return addresses.contains(address)
    }
}
