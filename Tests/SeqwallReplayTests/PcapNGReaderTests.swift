import Foundation
import SeqwallCore
import SeqwallTestSupport
@testable import SeqwallReplay
import Testing

/// The mixed session split over two interfaces, as mergecap writes a merge of two captures:
/// interface 0 Ethernet with a snap length of 8192 and microsecond stamps (the default),
/// interface 1 Linux cooked v2 with 262144 and nanosecond stamps. libpcap refuses such a file
/// ("an interface has a snapshot length 8192 different from ...").
private func mergedSession(bigEndian: Bool) -> PcapNGBuilder {
    var file = PcapNGBuilder(bigEndian: bigEndian)
    file.interface(linkType: 1, snapLength: 8192)
    file.interface(linkType: 276, snapLength: 262_144, resolution: 9)
    for (index, packet) in mixedSession().packets.enumerated() {
        if index % 2 == 0 {
            file.enhanced(interface: 0, units: packet.time / 1000, bytes: Frames.ethernet(packet.bytes))
        } else {
            file.enhanced(interface: 1, units: packet.time, bytes: Frames.linuxCooked2(packet.bytes))
        }
    }
    return file
}

@Suite struct PcapNGReaderTests {
    @Test(arguments: [false, true])
    func aMergedCaptureOfTwoInterfacesReplays(bigEndian: Bool) throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("merged.pcapng", mergedSession(bigEndian: bigEndian).bytes)
        let (document, packets) = try replayMixedSession(path)
        #expect(packets.map { $0["time"] as? Double } == (0..<14).map { Double($0) / 1000 })
        let capture = try #require(document["capture"] as? [String: Any])
        #expect(capture["link_type"] as? String == "EN10MB")
        #expect(capture["snap_length"] as? Int == 262_144)
        let interfaces = try #require(capture["interfaces"] as? [[String: Any]])
        #expect(interfaces.map { $0["link_type"] as? String } == ["EN10MB", "LINUX_SLL2"])
        #expect(interfaces.map { $0["snap_length"] as? Int } == [8192, 262_144])
    }

    @Test func aSingleInterfaceCaptureSaysNothingOfInterfaces() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("one.pcapng", CaptureWriter.pcapng(linkType: 1, frames: mixedSession().frames()))
        let (lines, _) = try replayFile(path, format: .json)
        let capture = try #require(try jsonDocument(lines)["capture"] as? [String: Any])
        #expect(capture["interfaces"] == nil && capture["snap_length"] as? Int == 65535)
    }

    @Test func timestampsInEveryResolution() {
        let time = PcapNGReader.time
        #expect(time(1_700_000_000_123_456, .decimal(6), 0) == (1_700_000_000, 123_456_000))
        #expect(time(1_700_000_000_123_456_789, .decimal(9), 0) == (1_700_000_000, 123_456_789))
        #expect(time(1_234_567_891_234, .decimal(12), 0) == (1, 234_567_891))
        #expect(time(17, .decimal(0), 0) == (17, 0))
        #expect(time(5 << 20 | 1 << 19, .binary(20), 0) == (5, 500_000_000))
        #expect(time(1 << 62, .binary(63), 0) == (0, 500_000_000))
        #expect(time(1_700_000_000_000_000, .decimal(6), -3600) == (1_699_996_400, 0))
    }

    @Test func simpleAndObsoleteBlocksReadAndOthersAreSkipped() throws {
        var file = PcapNGBuilder()
        file.interface(linkType: 1, snapLength: 60, resolution: 3, offsetSeconds: 100)
        let script = mixedSession()
        let frames = script.frames()
        // A Name Resolution Block and an Interface Statistics Block are skipped.
        file.block(type: 4, body: file.int(UInt16(0)) + file.int(UInt16(0)))
        file.obsolete(interface: 0, units: 1_700_000_000_000, bytes: frames[0].bytes)
        file.block(type: 5, body: file.int(UInt32(0)) + file.int(UInt32(0)) + file.int(UInt32(0)) + [0, 0, 0, 0])
        // A Simple Packet Block: cut to the interface's snap length of 60, timed as the frame before.
        file.simple(bytes: frames[1].bytes + [UInt8](repeating: 0xEE, count: 40))
        file.enhanced(interface: 0, units: 1_700_000_000_002, bytes: frames[2].bytes)
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let capture = try CaptureFile(path: try directory.file("blocks.pcapng", file.bytes))
        var seen: [(Int64, Int64, Int, Int)] = []
        while let frame = try capture.read({ ($0.seconds, $0.nanoseconds, $0.bytes.count, $0.originalLength) }) {
            seen.append(frame)
        }
        #expect(seen.map(\.0) == [1_700_000_100, 1_700_000_100, 1_700_000_100])
        #expect(seen.map(\.1) == [0, 0, 2_000_000])
        #expect(seen[1].2 == 60 && seen[1].3 == frames[1].bytes.count + 40)
        #expect(capture.snapLength == 60)
    }

    @Test func aSecondSectionHasItsOwnByteOrderAndInterfaces() throws {
        var file = mergedSession(bigEndian: false)
        var second = PcapNGBuilder(bigEndian: true)
        second.interface(linkType: 101, snapLength: 0)
        second.enhanced(interface: 0, units: 1_700_000_100_000_000, bytes: synPacket())
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("sections.pcapng", file.bytes + second.bytes)
        let (lines, damage) = try replayFile(path)
        #expect(damage == nil)
        #expect(lines[14].hasSuffix(":8080 [S] seq=0 ack=0 win=65535 len=0 ACCEPT SYN_SENT"))
        // Interface 1 of the first section is not the second section's.
        second.enhanced(interface: 1, units: 1_700_000_100_000_000, bytes: synPacket())
        file = mergedSession(bigEndian: false)
        let (_, wrong) = try replayFile(try directory.file("wrong.pcapng", file.bytes + second.bytes))
        #expect(wrong?.description == "\(directory.path)/wrong.pcapng: damaged pcapng file: a packet names interface 1, which its section does not describe (after frame 15)")
    }

    @Test func damageIsReportedAfterTheFramesBeforeIt() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let whole = mergedSession(bigEndian: false).bytes
        var mismatched = mergedSession(bigEndian: true)
        mismatched.block(type: 6, body: [UInt8](repeating: 0, count: 20), trailer: 99)
        var unsupported = mergedSession(bigEndian: false)
        unsupported.interface(linkType: 105, snapLength: 0)
        unsupported.enhanced(interface: 2, units: 0, bytes: [1, 2, 3])
        let cases: [(String, [UInt8], String)] = [
            ("cut", Array(whole.dropLast(10)), "truncated block"),
            ("cut-header", Array(whole + [6, 0, 0]), "truncated block header"),
            ("trailer", mismatched.bytes, "a block's two lengths differ"),
            ("huge", whole + PcapNGBuilder().int(UInt32(6)) + PcapNGBuilder().int(UInt32(0x7FFF_FFF0)),
             "a block length of 2147483632 bytes is not valid"),
        ]
        for (name, bytes, what) in cases {
            let path = try directory.file(name + ".pcapng", bytes)
            let (lines, damage) = try replayFile(path)
            let frames = name == "cut" ? 13 : 14
            #expect(damage?.description == "\(path): damaged pcapng file: \(what) (after frame \(frames))", "\(name)")
            #expect(lines.contains("frames       read \(frames)  replayed \(frames)  skipped 0"), "\(name)")
        }
        let path = try directory.file("unsupported.pcapng", unsupported.bytes)
        let (_, damage) = try replayFile(path)
        #expect(damage?.description == "\(path): a frame's interface has link type IEEE802_11 (105), which replay does not read (after frame 14)")
    }

    @Test func whatCannotBeOpenedSaysWhy() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        var early = PcapNGBuilder()
        early.enhanced(interface: 0, units: 0, bytes: [1])
        var version = PcapNGBuilder()
        version.section(major: 2)
        let cases: [(String, [UInt8], String)] = [
            ("early", early.bytes, "a packet comes before any interface is described"),
            ("none", PcapNGBuilder().bytes, "cannot read capture: no interface is described before the end"),
            ("version", version.bytes, "damaged pcapng file: pcapng version 2.0 is not one replay reads (1.x)"),
            ("magic", [0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 1, 2, 3, 4], "damaged pcapng file: a section header has no byte-order magic"),
            ("short", [0x0A, 0x0D], "damaged pcapng file: truncated block header"),
        ]
        for (name, bytes, message) in cases {
            let path = try directory.file(name + ".pcapng", bytes)
            #expect(throws: CaptureError("\(path): \(message)"), "\(name)") { try CaptureFile(path: path) }
        }
    }

    @Test func damagedBytesNeverCrashTheReader() throws {
        // Each variant of a good file with a few bytes changed or cut is read to its end or
        // its first error; every error names the file. A fixed seed keeps a failure
        // reproducible.
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let good = mergedSession(bigEndian: true).bytes
        var state: UInt64 = 0x5EC0_A11
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var errors = 0
        for round in 0..<300 {
            var bytes = good
            for _ in 0...next(4) { bytes[next(bytes.count)] = UInt8(next(256)) }
            if round % 3 == 0 { bytes.removeLast(next(bytes.count)) }
            let path = try directory.file("damaged-\(round).pcapng", bytes)
            do {
                let capture = try CaptureFile(path: path)
                while try capture.read({ $0.bytes.count }) != nil {}
            } catch {
                errors += 1
                #expect(error.description.hasPrefix(path + ": "), "\(error)")
            }
        }
        #expect(errors > 100)
    }

    @Test func noDescriptorIsLeftOpen() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let good = try directory.file("good.pcapng", mergedSession(bigEndian: false).bytes)
        let bad = try directory.file("bad.pcapng", PcapNGBuilder().bytes)
        let classic = try directory.file("classic.pcap", CaptureWriter.pcap(linkType: 1, frames: mixedSession().frames()))
        // Descriptors open on this test's own files (other tests run alongside and open theirs).
        func open() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
                try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)
            }.filter { $0.hasPrefix(directory.path) }
        }
        var held: [CaptureFile] = []
        for _ in 0..<20 {
            held.append(try CaptureFile(path: good))
            held.append(try CaptureFile(path: classic))
            #expect(throws: CaptureError.self) { try CaptureFile(path: bad) }
        }
        #expect(try open().count == 40)
        held.removeAll()
        #expect(try open() == [])
    }
}
