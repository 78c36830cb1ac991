import Crypto
import Foundation
import SeqwallSync
import SeqwallTestSupport
import XCTest

/// SyncCipher (libsodium) against swift-crypto's ChaChaPoly, the oracle: both are RFC 8439's
/// ChaCha20-Poly1305, so a datagram one seals the other opens, and both seal to the same bytes
/// (docs/sync-protocol.md, Datagram and Encryption). The oracle's key and nonce are derived here
/// from the document, not from SyncCipher.
final class SyncCipherTests: XCTestCase {
    /// The largest body a datagram carries on the wire (1,500 bytes less IPv6, UDP, header, tag),
    /// and the largest a UDP datagram could (65,507 bytes less header and tag).
    static let wireBody = 1500 - 40 - 8 - SyncCipher.minimumLength
    static let udpBody = 65507 - SyncCipher.minimumLength

    struct Sample {
        var key: [UInt8]
        var header: SyncHeader
        var body: [UInt8]
    }

    /// Random keys, headers and bodies: lengths around the cipher's 64-byte blocks and Poly1305's
    /// 16-byte ones, empty, and the largest.
    static func samples() -> [Sample] {
        var generator = SplitMix64(seed: 8439)
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) } }
        var lengths = [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, wireBody, udpBody]
        for _ in 0..<200 { lengths.append(Int(generator.next() % UInt64(wireBody + 1))) }
        return lengths.map { length in
            let kind = SyncMessageKind.allCases[Int(generator.next() % UInt64(SyncMessageKind.allCases.count))]
            let header = SyncHeader(kind: kind, node: UInt32(truncatingIfNeeded: generator.next()),
                                    epoch: UInt32(truncatingIfNeeded: generator.next()), sequence: generator.next())
            return Sample(key: bytes(32), header: header, body: bytes(length))
        }
    }

    /// The header's bytes as docs/sync-protocol.md lays them out.
    static func headerBytes(_ header: SyncHeader) -> [UInt8] {
        func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
            (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        }
        return Array("SQWS".utf8) + [header.version, header.kind.rawValue, 0, 0] + bigEndian(header.node)
            + bigEndian(header.epoch) + bigEndian(header.sequence)
    }

    /// The incarnation's key: HKDF-SHA256 of the pre-shared key, salt "seqwall-sync-1", info
    /// "seqwall sync node" and the node (u32).
    static func oracleKey(_ sample: Sample) -> SymmetricKey {
        let info = Array("seqwall sync node".utf8) + headerBytes(sample.header)[8..<12]
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: sample.key), salt: Array("seqwall-sync-1".utf8),
                                      info: info, outputByteCount: 32)
    }

    /// The nonce: epoch (u32) then sequence (u64).
    static func oracleNonce(_ sample: Sample) throws -> ChaChaPoly.Nonce {
        try ChaChaPoly.Nonce(data: headerBytes(sample.header)[12..<24])
    }

    /// The datagram as swift-crypto seals it: header, ciphertext, tag.
    static func oracleSeal(_ sample: Sample) throws -> [UInt8] {
        let clear = headerBytes(sample.header)
        let box = try ChaChaPoly.seal(sample.body, using: oracleKey(sample), nonce: oracleNonce(sample),
                                      authenticating: clear)
        return clear + Array(box.ciphertext) + Array(box.tag)
    }

    func testSealedDatagramsOpenWithSwiftCryptoAndAreItsBytes() throws {
        for sample in Self.samples() {
            var cipher = SyncCipher(key: SyncKey(bytes: sample.key))
            let datagram = cipher.seal(sample.header, body: sample.body)
            XCTAssertEqual(datagram.count, SyncCipher.minimumLength + sample.body.count)
            XCTAssertEqual(Array(datagram.prefix(24)), Self.headerBytes(sample.header))
            let tail = datagram.count - 16
            let box = try ChaChaPoly.SealedBox(nonce: Self.oracleNonce(sample), ciphertext: datagram[24..<tail],
                                               tag: datagram[tail...])
            let opened = try ChaChaPoly.open(box, using: Self.oracleKey(sample), authenticating: datagram.prefix(24))
            XCTAssertEqual(Array(opened), sample.body, "body of \(sample.body.count) bytes")
            XCTAssertEqual(datagram, try Self.oracleSeal(sample), "body of \(sample.body.count) bytes")
        }
    }

    func testDatagramsSealedBySwiftCryptoOpen() throws {
        for sample in Self.samples() {
            var cipher = SyncCipher(key: SyncKey(bytes: sample.key))
            switch cipher.open(try Self.oracleSeal(sample)) {
            case .success(let (header, body)):
                XCTAssertEqual(header, sample.header)
                XCTAssertEqual(body, sample.body, "body of \(sample.body.count) bytes")
            case .failure(let refusal):
                XCTFail("refused as \(refusal.name): body of \(sample.body.count) bytes")
            }
        }
    }

    func testForgedTruncatedAndForeignDatagramsAreRefused() throws {
        var generator = SplitMix64(seed: 7539)
        for sample in Self.samples().prefix(60) {
            var cipher = SyncCipher(key: SyncKey(bytes: sample.key))
            let datagram = try Self.oracleSeal(sample)
            func refusal(_ bytes: [UInt8]) -> SyncRefusal? {
                if case .failure(let refusal) = cipher.open(bytes) { return refusal }
                return nil
            }
            func flipped(_ range: Range<Int>) -> [UInt8] {
                var forged = datagram
                forged[range.lowerBound + Int(generator.next() % UInt64(range.count))] ^= UInt8(1 << (generator.next() % 8))
                return forged
            }
            let tail = datagram.count - 16
            XCTAssertEqual(refusal(flipped(tail..<datagram.count)), .authentication, "forged tag")
            // The reserved field, the node (another key), the epoch and the sequence (the nonce).
            XCTAssertEqual(refusal(flipped(6..<24)), .authentication, "forged header")
            if tail > 24 { XCTAssertEqual(refusal(flipped(24..<tail)), .authentication, "forged body") }
            let short: SyncRefusal = datagram.count > SyncCipher.minimumLength ? .authentication : .truncated
            XCTAssertEqual(refusal(Array(datagram.dropLast())), short, "a byte short")
            XCTAssertEqual(refusal(datagram + [0]), .authentication, "a byte long")
            XCTAssertEqual(refusal(Array(datagram.prefix(SyncCipher.minimumLength - 1))), .truncated)
            var other = SyncCipher(key: SyncKey(bytes: sample.key.map { $0 ^ 0x5A }))
            if case .failure(let refusal) = other.open(datagram) {
                XCTAssertEqual(refusal, .authentication, "another key")
            } else {
                XCTFail("opened under another key")
            }
            XCTAssertNil(refusal(datagram), "the datagram itself opens")
        }
    }
}
