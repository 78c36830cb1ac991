#if canImport(Glibc)
import Glibc
#endif

/// A pcapng reader for the blocks replay needs (draft-ietf-opsawg-pcapng): Section Header,
/// Interface Description, Enhanced Packet, Simple Packet and the obsolete Packet Block; every
/// other block is skipped. Each section has its own byte order and its own interfaces, and each
/// interface its own link type, snap length and timestamp resolution and offset.
///
/// libpcap reads pcapng too, but refuses a file whose interfaces differ in link type or snap
/// length: exactly what merging captures of several interfaces (mergecap, Wireshark) gives.
final class PcapNGReader {
    /// One Interface Description Block.
    struct Interface: Equatable {
        /// The LINKTYPE_ value, with LINKTYPE_RAW given as the DLT_RAW libpcap reports for it.
        var linkType: Int32
        /// 0 when the capture set no limit.
        var snapLength: Int
        /// if_tsresol: timestamps count 10^-exponent seconds, or 2^-exponent when binary.
        var resolution = Resolution.decimal(6)
        /// if_tsoffset: seconds to add to every timestamp.
        var offsetSeconds: Int64 = 0
    }

    enum Resolution: Equatable {
        case decimal(Int)
        case binary(Int)
    }

    static let sectionHeaderType: UInt32 = 0x0A0D_0D0A
    static let byteOrderMagic: UInt32 = 0x1A2B_3C4D
    static let interfaceDescriptionType: UInt32 = 1
    static let packetType: UInt32 = 2
    static let simplePacketType: UInt32 = 3
    static let enhancedPacketType: UInt32 = 6
    /// Refuses a block larger than this rather than allocate what a damaged length says
    /// (libpcap's own limit for a block).
    static let maximumBlockLength = 16 * 1024 * 1024

    let path: String
    private let file: UnsafeMutablePointer<FILE>
    /// The current section's interfaces, by their index in it.
    private(set) var interfaces: [Interface] = []
    /// Every interface of every section, for the report.
    private(set) var allInterfaces: [Interface] = []
    private var swapped = false
    /// The body of the last block read; a frame's bytes point into it.
    private var body: [UInt8] = []
    /// A Simple Packet Block has no timestamp: it takes the frame before it's.
    private var lastTime: (seconds: Int64, nanoseconds: Int64) = (0, 0)

    /// Reads the first Section Header Block and the blocks after it up to the first
    /// interface, so that the first interface's link type is known before any frame.
    /// Takes `file` over and closes it.
    init(file: UnsafeMutablePointer<FILE>, path: String) throws(CaptureError) {
        self.file = file
        self.path = path
        // Every stored property is set by now: a throw below still runs deinit, which closes
        // the file.
        guard try readBlock() == PcapNGReader.sectionHeaderType else {
            throw CaptureError("\(path): cannot read capture: not a pcapng file")
        }
        while interfaces.isEmpty {
            switch try readBlock() {
            case nil:
                throw CaptureError("\(path): cannot read capture: no interface is described before the end")
            case PcapNGReader.packetType?, PcapNGReader.simplePacketType?, PcapNGReader.enhancedPacketType?:
                throw CaptureError("\(path): a packet comes before any interface is described")
            default:
                continue
            }
        }
    }

    deinit {
        fclose(file)
    }

    /// The first interface's link type: the one a capture of a single interface has.
    var dataLinkType: Int32 { allInterfaces[0].linkType }

    /// The largest snap length of any interface (0, no limit, counts as the largest).
    var snapLength: Int {
        allInterfaces.contains { $0.snapLength == 0 } ? 0 : allInterfaces.map(\.snapLength).max() ?? 0
    }

    /// Hands the next frame and its interface to `body`; nil at the end of the file.
    func read<Result>(_ handle: (CapturedFrame, Interface) -> Result) throws(CaptureError) -> Result? {
        while let type = try readBlock() {
            switch type {
            case PcapNGReader.enhancedPacketType, PcapNGReader.packetType:
                // Enhanced: interface (32 bits). Obsolete Packet Block: interface (16), drops (16).
                // Then timestamp high and low, captured and original length, the data.
                guard body.count >= 20 else { throw damaged("a packet block is too short") }
                let index = type == PcapNGReader.packetType ? Int(u16(0)) : Int(u32(0))
                let interface = try self.interface(index)
                let captured = Int(u32(12))
                guard captured <= body.count - 20 else { throw damaged("a packet's length runs past its block") }
                let (seconds, nanoseconds) = time(UInt64(u32(4)) << 32 | UInt64(u32(8)), interface)
                lastTime = (seconds, nanoseconds)
                return frame(from: 20, captured: captured, original: Int(u32(16)), interface, handle)
            case PcapNGReader.simplePacketType:
                guard body.count >= 4 else { throw damaged("a simple packet block is too short") }
                let interface = try self.interface(0)
                let original = Int(u32(0))
                var captured = min(original, body.count - 4)
                if interface.snapLength > 0 { captured = min(captured, interface.snapLength) }
                return frame(from: 4, captured: captured, original: original, interface, handle)
            default:
                continue
            }
        }
        return nil
    }

    // MARK: Blocks

    /// Reads one block into `body` and returns its type; nil at the end of the file. A Section
    /// Header or Interface Description Block is taken in as it is read. `body` keeps its
    /// storage from block to block: reading a frame allocates nothing once it is large enough.
    private func readBlock() throws(CaptureError) -> UInt32? {
        var rawType: UInt32 = 0
        let got = withUnsafeMutableBytes(of: &rawType) { fread($0.baseAddress, 1, 4, file) }
        if got == 0 && feof(file) != 0 { return nil }
        guard got == 4, let rawLength = readWord() else { throw damaged("truncated block header") }
        if rawType == PcapNGReader.sectionHeaderType {
            // The byte-order magic after the length says how to read the length.
            guard let magic = readWord() else { throw damaged("truncated section header") }
            switch magic {
            case PcapNGReader.byteOrderMagic: swapped = false
            case PcapNGReader.byteOrderMagic.byteSwapped: swapped = true
            default: throw damaged("a section header has no byte-order magic")
            }
            let length = try checkedLength(order(rawLength), minimum: 28)
            resizeBody(length - 12)
            withUnsafeBytes(of: magic) { body.replaceSubrange(0..<4, with: $0) }
            guard body.withUnsafeMutableBytes({ fread($0.baseAddress! + 4, 1, length - 16, file) }) == length - 16 else {
                throw damaged("truncated section header")
            }
            try checkTrailer(length)
            try startSection()
            return PcapNGReader.sectionHeaderType
        }
        let type = order(rawType)
        let length = try checkedLength(order(rawLength), minimum: 12)
        resizeBody(length - 12)
        if !body.isEmpty {
            guard body.withUnsafeMutableBytes({ fread($0.baseAddress, 1, $0.count, file) }) == body.count else {
                throw damaged("truncated block")
            }
        }
        try checkTrailer(length)
        if type == PcapNGReader.interfaceDescriptionType { try describeInterface() }
        return type
    }

    /// Four bytes as the host stores them (`order` turns them into the section's); nil when the
    /// file ends first.
    private func readWord() -> UInt32? {
        var value: UInt32 = 0
        return withUnsafeMutableBytes(of: &value) { fread($0.baseAddress, 1, 4, file) } == 4 ? value : nil
    }

    private func resizeBody(_ count: Int) {
        if body.count > count {
            body.removeLast(body.count - count)
        } else if body.count < count {
            // What is there is about to be overwritten: a new zeroed buffer is the cheapest.
            body = [UInt8](repeating: 0, count: count)
        }
    }

    private func checkedLength(_ length: UInt32, minimum: Int) throws(CaptureError) -> Int {
        let length = Int(length)
        guard length >= minimum, length % 4 == 0, length <= PcapNGReader.maximumBlockLength else {
            throw damaged("a block length of \(length) bytes is not valid")
        }
        return length
    }

    /// The total length repeated at the end of every block.
    private func checkTrailer(_ length: Int) throws(CaptureError) {
        guard let trailer = readWord() else { throw damaged("truncated block") }
        guard Int(order(trailer)) == length else { throw damaged("a block's two lengths differ") }
    }

    /// Section Header Block: magic, major and minor version, section length, options. A new
    /// section starts a new list of interfaces.
    private func startSection() throws(CaptureError) {
        let major = u16(4)
        guard major == 1 else { throw damaged("pcapng version \(major).\(u16(6)) is not one replay reads (1.x)") }
        interfaces = []
    }

    /// Interface Description Block: link type, reserved, snap length, options.
    private func describeInterface() throws(CaptureError) {
        guard body.count >= 8 else { throw damaged("an interface description is too short") }
        var linkType = Int32(u16(0))
        // LINKTYPE_RAW is the value written in files for what libpcap calls DLT_RAW.
        if linkType == 101 { linkType = 12 }
        var interface = Interface(linkType: linkType, snapLength: Int(u32(4)))
        var offset = 8
        while offset + 4 <= body.count {
            let code = u16(offset), length = Int(u16(offset + 2))
            let value = offset + 4
            guard value + length <= body.count else { throw damaged("an interface option runs past its block") }
            switch code {
            case 0:
                offset = body.count
                continue
            case 9 where length >= 1:
                // if_tsresol: the high bit says a power of 2, else of 10.
                let exponent = Int(body[value] & 0x7F)
                interface.resolution = body[value] & 0x80 == 0 ? .decimal(exponent) : .binary(exponent)
                // Finer than a nanosecond by far is no real clock, and would overflow 64 bits.
                if case .decimal(let digits) = interface.resolution, digits > 18 {
                    throw damaged("a timestamp resolution of 10^-\(digits) s is not valid")
                }
                if case .binary(let bits) = interface.resolution, bits > 63 {
                    throw damaged("a timestamp resolution of 2^-\(bits) s is not valid")
                }
            case 14 where length >= 8:
                interface.offsetSeconds = Int64(bitPattern: u64(value))
            default:
                break
            }
            offset = value + (length + 3) / 4 * 4
        }
        interfaces.append(interface)
        allInterfaces.append(interface)
    }

    private func interface(_ index: Int) throws(CaptureError) -> Interface {
        guard index < interfaces.count else {
            throw damaged("a packet names interface \(index), which its section does not describe")
        }
        return interfaces[index]
    }

    private func frame<Result>(from start: Int, captured: Int, original: Int, _ interface: Interface,
                               _ handle: (CapturedFrame, Interface) -> Result) -> Result {
        body.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[start..<(start + captured)])
            return handle(CapturedFrame(seconds: lastTime.seconds, nanoseconds: lastTime.nanoseconds,
                                        bytes: bytes, originalLength: original), interface)
        }
    }

    /// A timestamp in the interface's units as seconds and nanoseconds since the epoch.
    static func time(_ units: UInt64, resolution: Resolution, offsetSeconds: Int64) -> (Int64, Int64) {
        let seconds: UInt64, nanoseconds: UInt64
        switch resolution {
        case .decimal(let digits):
            var perSecond: UInt64 = 1
            for _ in 0..<digits { perSecond *= 10 }
            seconds = units / perSecond
            let fraction = units % perSecond
            if digits <= 9 {
                var scale: UInt64 = 1
                for _ in digits..<9 { scale *= 10 }
                nanoseconds = fraction * scale
            } else {
                var scale: UInt64 = 1
                for _ in 9..<digits { scale *= 10 }
                nanoseconds = fraction / scale
            }
        case .binary(let bits):
            guard bits > 0 else { return (Int64(clamping: units) &+ offsetSeconds, 0) }
            let shift = bits
            seconds = units >> UInt64(shift)
            let fraction = units & ((1 << UInt64(shift)) - 1)
            // fraction * 10^9 / 2^bits, without overflowing 64 bits.
            let (high, low) = fraction.multipliedFullWidth(by: 1_000_000_000)
            nanoseconds = shift == 0 ? 0 : (high << (64 - UInt64(shift))) | (low >> UInt64(shift))
        }
        let (total, overflow) = Int64(clamping: seconds).addingReportingOverflow(offsetSeconds)
        return (overflow ? (offsetSeconds < 0 ? .min : .max) : total, Int64(nanoseconds))
    }

    private func time(_ units: UInt64, _ interface: Interface) -> (Int64, Int64) {
        PcapNGReader.time(units, resolution: interface.resolution, offsetSeconds: interface.offsetSeconds)
    }

    // MARK: Bytes

    private func damaged(_ what: String) -> CaptureError { CaptureError("\(path): damaged pcapng file: \(what)") }

    private func order(_ value: UInt32) -> UInt32 { swapped ? value.byteSwapped : value }


    private func u16(_ offset: Int) -> UInt16 {
        let value = body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
        return swapped ? value.byteSwapped : value
    }

    private func u32(_ offset: Int) -> UInt32 {
        order(body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) })
    }

    private func u64(_ offset: Int) -> UInt64 {
        let value = body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self) }
        return swapped ? value.byteSwapped : value
    }
}
