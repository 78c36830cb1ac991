/// Timeouts of the flows that are not TCP, in seconds, with the kernel's defaults
/// (nf_conntrack_proto_udp.c udp_timeouts, nf_conntrack_proto_icmp.c nf_ct_icmp_timeout,
/// nf_conntrack_proto_icmpv6.c nf_ct_icmpv6_timeout).
public struct DatagramTimeouts: Sendable, Equatable {
    /// A UDP flow until it has been a stream for a while (UDP_CT_UNREPLIED).
    public var udpSingle: UInt32 = 30
    /// A UDP flow with traffic both ways that is still active 2 s after it began
    /// (UDP_CT_REPLIED; the flow is then assured).
    public var udpStream: UInt32 = 120
    /// ICMP and ICMPv6 echo.
    public var icmp: UInt32 = 30

    public init() {}
}
