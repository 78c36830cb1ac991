/// The daemon's one SYN cookie secret, shared by every worker, and the keys it rotates through
/// (docs/synproxy.md, The cookie). The key a cookie is made with changes every
/// `rotationNanoseconds` of the wall clock: the key of rotation period `p` is SipHash-2-4 of
/// `p` under the secret (a PRF, so one period's key says nothing of another's, nor of the
/// secret). A worker accepts the current period's key and the one before, so a cookie made just
/// before a rotation is still good for the two minutes its counter allows.
///
/// Periods and the cookie's minute counter follow the wall clock, not the monotonic one, so
/// that two nodes holding the same secret (derived from the HA sync key) make and accept the
/// same cookies: a handshake begun on one completes on the other after a failover. The keys
/// are derived off the packet path (the daemon's control thread, at each period's start) and
/// handed to the workers as a whole `SynCookie` value.
public struct SynCookieSecret: Sendable, Equatable {
    public let secret: SipHashKey

    /// Two minutes: the cookie counter's whole life (SynCookie.maximumAge minutes), so that
    /// the previous period's key covers every cookie that can still be good.
    public static let rotationNanoseconds: UInt64 = 120_000_000_000

    public init(secret: SipHashKey) {
        self.secret = secret
    }

    /// A random secret: without HA sync, no other process need make the same cookies.
    public static func random() -> SynCookieSecret { SynCookieSecret(secret: .random()) }

    /// The rotation period of a wall time (nanoseconds since the Unix epoch).
    public static func period(wallNanoseconds: UInt64) -> UInt64 { wallNanoseconds / rotationNanoseconds }

    /// Nanoseconds from `wallNanoseconds` to the start of the next period.
    public static func untilNextPeriod(wallNanoseconds: UInt64) -> UInt64 {
        rotationNanoseconds - wallNanoseconds % rotationNanoseconds
    }

    /// The key of one rotation period.
    public func key(period: UInt64) -> SipHashKey {
        SipHashKey(k0: word(period, half: 0), k1: word(period, half: 1))
    }

    /// What a worker needs at wall time `wallNanoseconds`, which is `monotonicNanoseconds` on
    /// the tracker's clock: the period's key, the one before, and the offset that puts the
    /// tracker's clock on the wall clock for the cookie counter.
    public func cookies(wallNanoseconds: UInt64, monotonicNanoseconds: UInt64) -> SynCookie {
        let period = SynCookieSecret.period(wallNanoseconds: wallNanoseconds)
        return SynCookie(current: key(period: period), previous: key(period: period &- 1),
                         clockOffset: wallNanoseconds &- monotonicNanoseconds)
    }

    private func word(_ period: UInt64, half: UInt64) -> UInt64 {
        var hasher = SipHash(key: secret)
        hasher.append(period)
        return hasher.finish(tail: half, count: 1)
    }
}
