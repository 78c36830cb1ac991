import SeqwallFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPacketTracking(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.packetTracking.fuzzOne(data, size)
}
