/// The keyed SYN cookie: the initial sequence number of the SYN-ACK seqwall sends for a
/// `synproxy` rule, from which the client's ACK proves it got that SYN-ACK, so nothing is kept
/// for a SYN. Laid out as the kernel's (secure_tcp_syn_cookie, check_tcp_syn_cookie):
///
///     cookie = H(key, tuple) + client ISN + (count << 24) + ((H(key, tuple, count, ISN) + index) mod 2^24)
///
/// One change from the kernel: the client's ISN also goes into the inner hash, so an ACK with
/// another ISN fails the check instead of merely reading a neighbouring MSS index.
///
/// `count` is a minute counter: a cookie is good in the minute it was made and the next
/// (the kernel's MAX_SYNCOOKIE_AGE), `index` is the MSS table's entry. Two keys are accepted, the
/// current and the one before, so rotating the keys (SynCookieSecret) never breaks a handshake
/// in flight. A value on the stack: making and checking a cookie allocates nothing.
public struct SynCookie: Sendable {
    public private(set) var current: SipHashKey
    public private(set) var previous: SipHashKey
    /// Added to the tracker's (monotonic) clock for the minute counter, which then follows
    /// the wall clock: nodes sharing a secret then agree on the counter (SynCookieSecret).
    public private(set) var clockOffset: UInt64

    /// Bits below the counter (the kernel's COOKIEBITS).
    static let counterShift: UInt32 = 24
    static let lowMask: UInt32 = (1 << 24) - 1
    /// Counter steps a cookie stays good for: the minute it was made and the next.
    static let maximumAge: UInt32 = 2

    /// The MSS values a cookie can stand for, four each, as the kernel's msstab (IPv4) and
    /// msstab (IPv6, the Ethernet, PPPoE and jumbo MTUs less 60): a client gets the largest
    /// entry not above its own MSS.
    static func mssTable(ipv4: Bool, index: Int) -> UInt16 {
        if ipv4 {
            switch index { case 0: return 536; case 1: return 1300; case 2: return 1440; default: return 1460 }
        }
        switch index { case 0: return 1220; case 1: return 1420; case 2: return 1440; default: return 8940 }
    }

    public init(current: SipHashKey, previous: SipHashKey, clockOffset: UInt64 = 0) {
        self.current = current
        self.previous = previous
        self.clockOffset = clockOffset
    }

    /// Two fresh random keys.
    public init() {
        self.init(current: .random(), previous: .random())
    }

    /// Makes `key` current; the old current key is still accepted until the next rotation.
    public mutating func rotate(to key: SipHashKey) {
        previous = current
        current = key
    }

    /// The minute counter for a clock in nanoseconds (tcp_cookie_time).
    public static func counter(nanoseconds: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: nanoseconds / 60_000_000_000)
    }

    /// The minute counter at `now` on the tracker's clock.
    public func counter(now: UInt64) -> UInt32 { SynCookie.counter(nanoseconds: now &+ clockOffset) }

    /// The MSS table index for a client's MSS (0 when it sent none: RFC 9293 3.7.1's default is
    /// 536 for IPv4, and the smallest entry for IPv6).
    public static func mssIndex(clientMSS: UInt16, ipv4: Bool) -> Int {
        var index = 3
        while index > 0 && mssTable(ipv4: ipv4, index: index) > clientMSS { index -= 1 }
        return index
    }

    /// The cookie for a SYN from `client` to `server` with initial sequence number `clientISN`.
    public func make(client: IPAddress, clientPort: UInt16, server: IPAddress, serverPort: UInt16,
                     clientISN: UInt32, mssIndex: Int, counter: UInt32) -> UInt32 {
        SynCookie.make(key: current, client: client, clientPort: clientPort, server: server, serverPort: serverPort,
                       clientISN: clientISN, mssIndex: mssIndex, counter: counter)
    }

    /// The MSS of the cookie a client's ACK returns (`cookie` is the ACK's acknowledgment number
    /// less one, `clientISN` its sequence number less one), or nil when no key of ours made it
    /// in this minute or the one before: forged, for another tuple, or stale.
    public func check(client: IPAddress, clientPort: UInt16, server: IPAddress, serverPort: UInt16,
                      clientISN: UInt32, cookie: UInt32, counter: UInt32) -> UInt16? {
        // The current key first, then the previous; spelled out, as an array of the two would allocate.
        if let index = SynCookie.check(key: current, client: client, clientPort: clientPort, server: server,
                                       serverPort: serverPort, clientISN: clientISN, cookie: cookie, counter: counter)
            ?? SynCookie.check(key: previous, client: client, clientPort: clientPort, server: server,
                               serverPort: serverPort, clientISN: clientISN, cookie: cookie, counter: counter) {
            return SynCookie.mssTable(ipv4: client.isIPv4, index: index)
        }
        return nil
    }

    private static func make(key: SipHashKey, client: IPAddress, clientPort: UInt16, server: IPAddress,
                             serverPort: UInt16, clientISN: UInt32, mssIndex: Int, counter: UInt32) -> UInt32 {
        let outer = hash(key: key, client, clientPort, server, serverPort, counter: 0, isn: 0, round: 0)
        let inner = hash(key: key, client, clientPort, server, serverPort, counter: counter, isn: clientISN,
                         round: 1)
        return outer &+ clientISN &+ (counter << counterShift)
            &+ ((inner &+ UInt32(truncatingIfNeeded: mssIndex)) & lowMask)
    }

    private static func check(key: SipHashKey, client: IPAddress, clientPort: UInt16, server: IPAddress,
                              serverPort: UInt16, clientISN: UInt32, cookie: UInt32, counter: UInt32) -> Int? {
        let outer = hash(key: key, client, clientPort, server, serverPort, counter: 0, isn: 0, round: 0)
        let rest = cookie &- outer &- clientISN
        let age = (counter &- (rest >> counterShift)) & (UInt32.max >> counterShift)
        guard age < maximumAge else { return nil }
        let made = counter &- age
        let index = (rest &- hash(key: key, client, clientPort, server, serverPort, counter: made, isn: clientISN,
                                 round: 1)) & lowMask
        return index < 4 ? Int(index) : nil
    }

    /// SipHash-2-4 of the tuple, the counter, the ISN and which of the two hashes this is,
    /// folded to 32 bits. The counter goes in whole, so one minute's hash says nothing of the next.
    private static func hash(key: SipHashKey, _ client: IPAddress, _ clientPort: UInt16, _ server: IPAddress,
                             _ serverPort: UInt16, counter: UInt32, isn: UInt32, round: UInt64) -> UInt32 {
        var hasher = SipHash(key: key)
        hasher.append(client.high)
        hasher.append(client.low)
        hasher.append(server.high)
        hasher.append(server.low)
        hasher.append(UInt64(clientPort) << 48 | UInt64(serverPort) << 32 | UInt64(counter))
        let tag = hasher.finish(tail: UInt64(isn) << 8 | round, count: 5)
        return UInt32(truncatingIfNeeded: tag ^ tag >> 32)
    }
}
