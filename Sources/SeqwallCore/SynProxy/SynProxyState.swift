/// What a proxied connection keeps once the client's ACK has proved its cookie: everything
/// the handshake with the server and the translation between the two halves need
/// (SynProxyHandshake, SynProxyTranslation). Nothing of it exists for a SYN.
public struct SynProxyState: Sendable, Equatable {
    /// seqwall's initial sequence number toward the client.
    public var cookie: UInt32
    public var clientISN: UInt32
    /// The client's options, from the cookie and the echoed timestamp.
    public var options: SynCookieOptions
    /// The shift seqwall advertised to the client for the server's window.
    public var advertisedWindowScale: UInt8?
    /// The window field of the client's ACK, already in the client's scale, which the server
    /// learns from the SYN seqwall sends.
    public var clientWindow: UInt16
    /// The client's latest timestamp value and the one seqwall's SYN-ACK carried (the ACK's echo).
    public var clientTimestamp: UInt32
    public var proxyTimestamp: UInt32
    /// The server's ISN less the cookie, and its timestamp value less seqwall's: set by the
    /// server's SYN-ACK (`serverAnswered`).
    public var sequenceOffset: UInt32 = 0
    public var timestampOffset: UInt32 = 0
    /// The server's window shift, from its SYN-ACK (nil: none).
    public var serverWindowScale: UInt8?
    public var serverAnswered = false

    public init(cookie: UInt32, clientISN: UInt32, options: SynCookieOptions, advertisedWindowScale: UInt8?,
                clientWindow: UInt16, clientTimestamp: UInt32, proxyTimestamp: UInt32) {
        self.cookie = cookie
        self.clientISN = clientISN
        self.options = options
        self.advertisedWindowScale = advertisedWindowScale
        self.clientWindow = clientWindow
        self.clientTimestamp = clientTimestamp
        self.proxyTimestamp = proxyTimestamp
    }

    /// Whether this copy may replace `held`, a copy of the same connection's state: the
    /// handshake only moves forward, so one whose server has not answered never replaces one
    /// whose server has (a peer's older copy, ConnectionTracker.applySyncedProxy; a sync turn's,
    /// SyncCoalescer.hold).
    public func mayReplace(_ held: SynProxyState) -> Bool { serverAnswered || !held.serverAnswered }
}
