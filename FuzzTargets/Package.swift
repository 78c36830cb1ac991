// swift-tools-version:6.0
// The libFuzzer executables. A package of their own: they have no main (libFuzzer's is linked
// in by -sanitize=fuzzer), so inside the root package they would break a plain `swift build`.
// Build and run with `make fuzz` (docs/development.md, Fuzzing):
//   swift build --package-path FuzzTargets --sanitize=fuzzer --sanitize=address \
//       -Xswiftc -sanitize=fuzzer,address      (why the last flag: Makefile, fuzz-build)
// SwiftPM names a path dependency after its directory, so this directory must not share its name
// with the checkout it depends on (a checkout called "fuzz" and a directory "Fuzz" collide).
import PackageDescription

let package = Package(
    name: "seqwall-fuzz",
    dependencies: [
        .package(name: "seqwall", path: ".."),
    ],
    targets: [
        .executableTarget(name: "FuzzPacketTracking",
                          dependencies: [.product(name: "SeqwallFuzzing", package: "seqwall")]),
        .executableTarget(name: "FuzzRuleFile",
                          dependencies: [.product(name: "SeqwallFuzzing", package: "seqwall")]),
        .executableTarget(name: "FuzzControlRequest",
                          dependencies: [.product(name: "SeqwallFuzzing", package: "seqwall")]),
        .executableTarget(name: "FuzzSyncMessage",
                          dependencies: [.product(name: "SeqwallFuzzing", package: "seqwall")]),
    ]
)
