@testable import SeqwallCore
import Testing

/// The daemon's cookie secret and its rotation (SynCookieSecret).
@Suite("SYN cookie secret")
struct SynCookieSecretTests {
    static let secret = SynCookieSecret(secret: SipHashKey(k0: 0x1111, k1: 0x2222))
    static let client = IPAddress(ipv4: 0xC000_0201)      // 192.0.2.1
    static let server = IPAddress(ipv4: 0xCB00_7107)      // 203.0.113.7
    static let minute: UInt64 = 60_000_000_000
    static let period = SynCookieSecret.rotationNanoseconds
    /// A wall time at the start of a rotation period, and a monotonic clock unrelated to it.
    static let wallStart: UInt64 = 1_700_000_040 * 1_000_000_000
    static let monotonic: UInt64 = 5_000_000_000

    /// The cookie a worker holding the keys of `wall` makes at `wall`, and whether one holding
    /// the keys of `checkedAt` accepts it then.
    func made(at wall: UInt64, secret: SynCookieSecret = secret) -> (SynCookie, UInt32, UInt32) {
        let jar = secret.cookies(wallNanoseconds: wall, monotonicNanoseconds: Self.monotonic)
        let counter = jar.counter(now: Self.monotonic)
        let cookie = jar.make(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80,
                              clientISN: 77, mssIndex: 3, counter: counter)
        return (jar, cookie, counter)
    }

    func accepted(_ cookie: UInt32, at wall: UInt64, secret: SynCookieSecret = secret,
                  monotonic: UInt64 = SynCookieSecretTests.monotonic) -> Bool {
        let jar = secret.cookies(wallNanoseconds: wall, monotonicNanoseconds: monotonic)
        return jar.check(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80, clientISN: 77,
                         cookie: cookie, counter: jar.counter(now: monotonic)) != nil
    }

    @Test func periodsChangeOnTheirBoundary() {
        #expect(Self.wallStart % Self.period == 0)
        let first = SynCookieSecret.period(wallNanoseconds: Self.wallStart)
        #expect(SynCookieSecret.period(wallNanoseconds: Self.wallStart - 1) == first - 1)
        #expect(SynCookieSecret.period(wallNanoseconds: Self.wallStart + Self.period - 1) == first)
        #expect(SynCookieSecret.period(wallNanoseconds: Self.wallStart + Self.period) == first + 1)
        #expect(SynCookieSecret.untilNextPeriod(wallNanoseconds: Self.wallStart) == Self.period)
        #expect(SynCookieSecret.untilNextPeriod(wallNanoseconds: Self.wallStart + Self.period - 1) == 1)
        // Each period its own key; the keys of a period are its own and the one before.
        #expect(Self.secret.key(period: first) != Self.secret.key(period: first + 1))
        #expect(Self.secret.key(period: first) != Self.secret.secret)
        let jar = Self.secret.cookies(wallNanoseconds: Self.wallStart + 1, monotonicNanoseconds: Self.monotonic)
        #expect(jar.current == Self.secret.key(period: first))
        #expect(jar.previous == Self.secret.key(period: first - 1))
        // The counter follows the wall clock, whatever the tracker's clock reads.
        #expect(jar.counter(now: Self.monotonic) == SynCookie.counter(nanoseconds: Self.wallStart + 1))
    }

    @Test func previousPeriodsKeyIsAcceptedAcrossTheRotation() {
        // Made in the last second of a period, checked in the next: the previous key.
        let lastSecond = Self.wallStart + Self.period - 1_000_000_000
        let (_, cookie, _) = made(at: lastSecond)
        #expect(accepted(cookie, at: lastSecond))
        #expect(accepted(cookie, at: Self.wallStart + Self.period + 10_000_000_000))
        // Made in the period's second minute: good to the end of the next minute, not after.
        #expect(accepted(cookie, at: Self.wallStart + 3 * Self.minute - 1))
        #expect(!accepted(cookie, at: Self.wallStart + 3 * Self.minute))
    }

    @Test func olderKeysAreRefused() {
        let (jar, cookie, counter) = made(at: Self.wallStart)
        // Two rotations later the key is gone, even with the counter held still.
        let later = Self.secret.cookies(wallNanoseconds: Self.wallStart + 2 * Self.period,
                                        monotonicNanoseconds: Self.monotonic)
        #expect(jar.check(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80, clientISN: 77,
                          cookie: cookie, counter: counter) != nil)
        #expect(later.check(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80, clientISN: 77,
                            cookie: cookie, counter: counter) == nil)
        // And by the clock: past the counter's two minutes.
        #expect(!accepted(cookie, at: Self.wallStart + 2 * Self.minute))
    }

    @Test func twoProcessesWithOneSecretAcceptEachOthersCookies() {
        let (_, cookie, _) = made(at: Self.wallStart + 30_000_000_000)
        // Another process: the same secret, its own monotonic clock.
        #expect(accepted(cookie, at: Self.wallStart + 40_000_000_000, monotonic: 987_654_321_000))
        #expect(!accepted(cookie, at: Self.wallStart + 40_000_000_000,
                          secret: SynCookieSecret(secret: SipHashKey(k0: 0x1111, k1: 0x2223)), monotonic: 987_654_321_000))
        #expect(SynCookieSecret.random() != SynCookieSecret.random())
    }
}
