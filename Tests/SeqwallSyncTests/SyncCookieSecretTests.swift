import SeqwallCore
import SeqwallSync
import XCTest

/// The SYN cookie secret two nodes take from their sync key (SyncKey.cookieSecret).
final class SyncCookieSecretTests: XCTestCase {
    static let client = IPAddress(ipv4: 0xC000_0201)      // 192.0.2.1
    static let server = IPAddress(ipv4: 0xCB00_7107)      // 203.0.113.7

    func testNodesWithOneSyncKeyAcceptEachOthersCookies() {
        let bytes = (0..<UInt8(32)).map { $0 &* 7 &+ 3 }
        let master = SyncKey(bytes: bytes).cookieSecret, backup = SyncKey(bytes: bytes).cookieSecret
        let stranger = SyncKey(bytes: bytes.map { $0 ^ 1 }).cookieSecret
        XCTAssertEqual(master, backup)
        XCTAssertNotEqual(master, stranger)
        // Not the key's own bytes: the derivation is the cookie's own.
        let raw = bytes.withUnsafeBytes { ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        XCTAssertNotEqual(master.secret, SipHashKey(k0: raw.0, k1: raw.1))

        // The master makes the cookie; the backup, with its own monotonic clock, checks it 40 s
        // later by the wall clock.
        let wall: UInt64 = 1_700_000_000 * 1_000_000_000
        let made = master.cookies(wallNanoseconds: wall, monotonicNanoseconds: 10_000_000_000)
        let cookie = made.make(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80,
                               clientISN: 5, mssIndex: 2, counter: made.counter(now: 10_000_000_000))
        func check(_ secret: SynCookieSecret) -> UInt16? {
            let later: UInt64 = 900_000_000_000
            let jar = secret.cookies(wallNanoseconds: wall + 40_000_000_000, monotonicNanoseconds: later)
            return jar.check(client: Self.client, clientPort: 40000, server: Self.server, serverPort: 80, clientISN: 5,
                             cookie: cookie, counter: jar.counter(now: later))
        }
        XCTAssertEqual(check(backup), 1440)
        XCTAssertNil(check(stranger))
    }
}
