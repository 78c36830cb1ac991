import SeqwallFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControlRequest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.controlRequest.fuzzOne(data, size)
}
