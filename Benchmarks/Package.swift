// swift-tools-version:6.1
// seqwall's core benchmark (`make bench`), in its own package so that the main package and
// `make test` never pull in ordo-one/benchmark.
//
// The root package exports only the `seqwall` executable, and a package can depend only on
// another package's products, so the pure core is compiled here from the same sources
// (Sources/SeqwallCore is a symlink to ../../Sources/SeqwallCore). A `SeqwallCore` library
// product in the root Package.swift would let this become `.package(path: "..")`.
import PackageDescription

let package = Package(
    name: "seqwall-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        // MallocInterposer counts every malloc of the measured region (allocations per packet).
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(name: "SeqwallCore", path: "Sources/SeqwallCore"),
        // The traffic the tracker is fed: pre-built packets of established flows and of whole
        // short connections, written outside the measured region.
        .target(name: "TrackerWorkloads", dependencies: ["SeqwallCore"]),
        // One workload without the benchmark harness, for callgrind and perf:
        // `tracker-profile established ipv4 10000 [passes]`.
        .executableTarget(name: "tracker-profile", dependencies: ["TrackerWorkloads", "SeqwallCore"]),
        // Address tables and the rule index at 10k to 1.2M prefixes and 10,000 rules:
        // `table-profile [directory]` (Sources/SeqwallRules is a symlink as SeqwallCore is).
        .target(name: "SeqwallRules", dependencies: ["SeqwallCore"], path: "Sources/SeqwallRules"),
        .executableTarget(name: "table-profile", dependencies: ["SeqwallCore", "SeqwallRules"]),
        // package-benchmark runs every executable target whose folder sits in "Benchmarks/".
        .executableTarget(
            name: "TrackerBenchmark",
            dependencies: [
                "SeqwallCore",
                "TrackerWorkloads",
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/TrackerBenchmark",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
