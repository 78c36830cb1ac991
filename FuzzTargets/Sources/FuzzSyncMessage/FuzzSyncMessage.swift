import SeqwallFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSyncMessage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.syncMessage.fuzzOne(data, size)
}
