import SeqwallFuzzing

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRuleFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzTarget.ruleFile.fuzzOne(data, size)
}
