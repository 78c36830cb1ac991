@testable import SeqwallCore
import Testing

/// The SYN cookie (SynCookie, SynCookieOptions) and the keyed hash under it (SipHash).
@Suite("SYN cookies")
struct SynCookieTests {
    static let key = SipHashKey(k0: 0x0706_0504_0302_0100, k1: 0x0F0E_0D0C_0B0A_0908)
    static let client = IPAddress(ipv4: 0xC000_0201)      // 192.0.2.1
    static let server = IPAddress(ipv4: 0xCB00_7107)      // 203.0.113.7
    static let client6 = IPAddress(high: 0x2001_0DB8_0000_0000, low: 1)
    static let server6 = IPAddress(high: 0x2001_0DB8_0000_0001, low: 7)

    /// The reference vectors of the SipHash paper's appendix A and its reference
    /// implementation's vectors.h: key 00..0f, messages 00, 00 01, ... of length 0, 8 and 15.
    @Test func sipHashReferenceVectors() {
        var empty = SipHash(key: Self.key)
        #expect(empty.finish() == 0x726F_DB47_DD0E_0E31)
        var eight = SipHash(key: Self.key)
        eight.append(0x0706_0504_0302_0100)
        #expect(eight.finish() == 0x93F5_F579_9A93_2462)
        var fifteen = SipHash(key: Self.key)
        fifteen.append(0x0706_0504_0302_0100)
        #expect(fifteen.finish(tail: 0x000E_0D0C_0B0A_0908, count: 7) == 0xA129_CA61_49BE_45E5)
    }

    func cookie(_ jar: SynCookie, isn: UInt32 = 1000, index: Int = 3, counter: UInt32 = 500) -> UInt32 {
        jar.make(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80, clientISN: isn,
                 mssIndex: index, counter: counter)
    }

    func check(_ jar: SynCookie, _ cookie: UInt32, isn: UInt32 = 1000, counter: UInt32 = 500,
               client: IPAddress = Self.client, clientPort: UInt16 = 40000, serverPort: UInt16 = 80) -> UInt16? {
        jar.check(client: client, clientPort: clientPort, server: Self.server, serverPort: serverPort, clientISN: isn,
                  cookie: cookie, counter: counter)
    }

    @Test func validCookieGivesBackItsMSS() {
        let jar = SynCookie(current: Self.key, previous: SipHashKey(k0: 1, k1: 2))
        for index in 0..<4 {
            let made = cookie(jar, index: index)
            #expect(check(jar, made) == SynCookie.mssTable(ipv4: true, index: index))
        }
        // The ISN wraps like any sequence number.
        #expect(check(jar, cookie(jar, isn: UInt32.max), isn: UInt32.max) == 1460)
    }

    @Test func cookieIsGoodThisMinuteAndTheNextOnly() {
        let jar = SynCookie(current: Self.key, previous: SipHashKey(k0: 1, k1: 2))
        let made = cookie(jar, counter: 500)
        #expect(check(jar, made, counter: 500) == 1460)
        #expect(check(jar, made, counter: 501) == 1460)
        #expect(check(jar, made, counter: 502) == nil)
        #expect(check(jar, made, counter: 499) == nil)
        // Across the counter's wrap.
        let wrapped = cookie(jar, counter: UInt32.max)
        #expect(check(jar, wrapped, counter: 0) == 1460)
    }

    @Test func forgedOrForeignCookiesAreRefused() {
        let jar = SynCookie(current: Self.key, previous: SipHashKey(k0: 1, k1: 2))
        let made = cookie(jar)
        #expect(check(jar, made, isn: 1001) == nil)
        #expect(check(jar, made, client: IPAddress(ipv4: 0xC000_0202)) == nil)
        #expect(check(jar, made, clientPort: 40001) == nil)
        #expect(check(jar, made, serverPort: 81) == nil)
        let other = SynCookie(current: SipHashKey(k0: 3, k1: 4), previous: SipHashKey(k0: 5, k1: 6))
        #expect(check(other, made) == nil)
        // Of a sweep of guessed cookies, about 2 in 2^8 x 4 in 2^24 pass: none of these.
        var accepted = 0
        for guess in 0..<UInt32(20000) where check(jar, made &+ guess &* 7919 &+ 1) != nil { accepted += 1 }
        #expect(accepted == 0)
    }

    @Test func rotationKeepsHandshakesInFlight() {
        var jar = SynCookie(current: Self.key, previous: SipHashKey(k0: 1, k1: 2))
        let before = cookie(jar)
        jar.rotate(to: SipHashKey(k0: 9, k1: 10))
        #expect(check(jar, before) == 1460)
        #expect(check(jar, cookie(jar)) == 1460)
        jar.rotate(to: SipHashKey(k0: 11, k1: 12))
        #expect(check(jar, before) == nil)
    }

    @Test func ipv6TupleAndMSSTable() {
        let jar = SynCookie(current: Self.key, previous: SipHashKey(k0: 1, k1: 2))
        let made = jar.make(client: Self.client6, clientPort: 5, server: Self.server6, serverPort: 443, clientISN: 7,
                            mssIndex: SynCookie.mssIndex(clientMSS: 1440, ipv4: false), counter: 3)
        #expect(jar.check(client: Self.client6, clientPort: 5, server: Self.server6, serverPort: 443, clientISN: 7,
                          cookie: made, counter: 3) == 1440)
        #expect(jar.check(client: Self.server6, clientPort: 5, server: Self.client6, serverPort: 443, clientISN: 7,
                          cookie: made, counter: 3) == nil)
    }

    @Test func mssIndexRoundsDown() {
        #expect(SynCookie.mssIndex(clientMSS: 0, ipv4: true) == 0)
        #expect(SynCookie.mssIndex(clientMSS: 1299, ipv4: true) == 0)
        #expect(SynCookie.mssIndex(clientMSS: 1300, ipv4: true) == 1)
        #expect(SynCookie.mssIndex(clientMSS: 1459, ipv4: true) == 2)
        #expect(SynCookie.mssIndex(clientMSS: 65535, ipv4: true) == 3)
        #expect(SynCookie.mssIndex(clientMSS: 1419, ipv4: false) == 0)
        #expect(SynCookie.mssIndex(clientMSS: 9000, ipv4: false) == 3)
    }

    @Test func timestampCarriesTheOptions() {
        let all = SynCookieOptions(mss: 1460, windowScale: 7, sackPermitted: true, ecn: true, timestamps: true)
        let value = all.timestampValue(clock: 0x1234_5678)
        #expect(value <= 0x1234_5678)
        #expect(value & ~0x3F == 0x1234_5678 & ~0x3F || value & ~0x3F == (0x1234_5678 & ~0x3F) - 64)
        #expect(SynCookieOptions.decode(mss: 1460, timestampEcho: value) == all)
        let none = SynCookieOptions(mss: 536, timestamps: true)
        #expect(SynCookieOptions.decode(mss: 536, timestampEcho: none.timestampValue(clock: 1000)) == none)
        let sackOnly = SynCookieOptions(mss: 536, sackPermitted: true, timestamps: true)
        #expect(SynCookieOptions.decode(mss: 536, timestampEcho: sackOnly.timestampValue(clock: 77)) == sackOnly)
        // A clock whose low bits are below the options' moves back one step, never ahead.
        #expect(all.timestampValue(clock: 0x1000_0000) == 0x1000_0000 - 64 + (7 | 16 | 32))
        // A shift of 15 is "none"; 14 is the largest an echo carries.
        #expect(SynCookieOptions.decode(mss: 1460, timestampEcho: 0x40 | 14).windowScale == 14)
        #expect(SynCookieOptions.decode(mss: 1460, timestampEcho: 0x40 | 15).windowScale == nil)
        // No echo: the options could not travel; only the MSS is known.
        #expect(SynCookieOptions.decode(mss: 1460, timestampEcho: nil) == SynCookieOptions(mss: 1460))
    }
}
