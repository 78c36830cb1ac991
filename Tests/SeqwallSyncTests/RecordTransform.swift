import SeqwallCore
@testable import SeqwallSync

/// The compact entry as docs/sync-protocol.md (Compact entries) defines it: the state file's
/// record (StateSnapshot.appendRecord) built first, then transformed byte by byte. This is how
/// the sender encoded entries before it wrote them from the connection's fields
/// (SyncCompactRecord.write); the tests hold the two to the same bytes.
enum RecordTransform {
    static func encode(_ entry: SyncEntry, monotonicNow: UInt64) -> [UInt8] {
        var r: [UInt8] = []
        StateSnapshot.appendRecord(entry.connection, queue: 0, monotonicNow: monotonicNow, to: &r)
        precondition(r.count == StateSnapshot.recordLength)
        func u32(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(r[offset + $1]) << UInt32(8 * $1) } }
        func u64(_ offset: Int) -> UInt64 { UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32 }
        func mapped(_ offset: Int) -> Bool { r[offset..<(offset + 10)].allSatisfy { $0 == 0 } && r[offset + 10] == 0xFF && r[offset + 11] == 0xFF }
        var out: [UInt8] = [0, entry.operation.rawValue]
        func distance(_ value: UInt32, from base: UInt32) {
            SyncCompactRecord.putVarint(UInt64(SyncCompactRecord.zigzag(value, from: base)), to: &out)
        }
        let ipv4 = mapped(8) && mapped(24)
        let tcp = r[44..<104].contains { $0 != 0 }
        out.append((ipv4 ? SyncCompactRecord.formIPv4 : 0) | (tcp ? SyncCompactRecord.formTCP : 0))
        out += r[2..<8]
        out += ipv4 ? Array(r[20..<24] + r[36..<40]) : Array(r[8..<40])
        out += r[40..<44]
        if tcp {
            let ends = [u32(64), u32(84)]
            out += r[64..<68]
            out += r[84..<88]
            for side in 0..<2 {
                let at = 64 + 20 * side
                distance(u32(at + 4), from: ends[side])
                distance(u32(at + 12), from: ends[1 - side])
                SyncCompactRecord.putVarint(UInt64(u32(at + 8)), to: &out)
                out += r[(at + 16)..<(at + 18)]
            }
            let side = r[7] == 0 ? 0 : 1
            distance(u32(44), from: ends[side])
            distance(u32(48), from: ends[1 - side])
            distance(u32(52), from: u32(44))
            out += r[56..<62]
        }
        for index in 0..<6 { SyncCompactRecord.putVarint(u64(104 + 8 * index), to: &out) }
        out[0] = UInt8(out.count - 1)
        return out
    }
}
