/// `synproxy [mss N] [wscale N]` on a pass rule: seqwall answers the rule's SYNs itself with a
/// SYN cookie and opens the connection to the server only for a client that completes the
/// handshake (docs/synproxy.md). `mss` and `wscale` are what the SYN-ACK to the client
/// advertises on the server's behalf, as nft's `synproxy mss N wscale N`; when left out, the
/// MSS the cookie stands for and the client's own shift are used.
public struct SynProxyRule: Sendable, Equatable {
    public var mss: UInt16?
    public var windowScale: UInt8?

    public init(mss: UInt16? = nil, windowScale: UInt8? = nil) {
        self.mss = mss
        self.windowScale = windowScale
    }
}
