// swift-tools-version:6.1
// seqwall's core benchmark (`make bench`), in its own package so that the main package and
// `make test` never pull in ordo-one/benchmark. It measures the root package's SeqwallCore
// library product and writes its packets with SeqwallTestSupport's builder.
// SwiftPM names a path dependency after its directory, hence the explicit name (see
// FuzzTargets/Package.swift).
import PackageDescription

/// What every target here builds on: the tracker, and the builder that writes its packets.
let seqwall: [Target.Dependency] = [
    .product(name: "SeqwallCore", package: "seqwall"),
    .product(name: "SeqwallTestSupport", package: "seqwall"),
]

let package = Package(
    name: "seqwall-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "seqwall", path: ".."),
        // MallocInterposer counts every malloc of the measured region (allocations per packet).
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The traffic the tracker is fed: pre-built packets of established flows and of whole
        // short connections, written outside the measured region.
        .target(name: "TrackerWorkloads", dependencies: seqwall),
        // One workload without the benchmark harness, for callgrind and perf:
        // `tracker-profile established ipv4 10000 [passes]`.
        .executableTarget(name: "tracker-profile", dependencies: ["TrackerWorkloads"] + seqwall),
        // Address tables and the rule index at 10k to 1.2M prefixes and 10,000 rules:
        // `table-profile [directory]`.
        .executableTarget(name: "table-profile",
                          dependencies: ["TrackerWorkloads", .product(name: "SeqwallRules", package: "seqwall")] + seqwall),
        // The connrate stream of sync changes both sync profiles are fed.
        .target(name: "SyncWorkloads", dependencies: [.product(name: "SeqwallSync", package: "seqwall")] + seqwall),
        // The sync thread's sending side (coalescing, encoding, sealing) fed a connrate-like
        // stream of changes: `sync-profile [CONNECTIONS-PER-TURN] [TURNS] [KNOWN]`.
        .executableTarget(name: "sync-profile",
                          dependencies: ["SyncWorkloads", "TrackerWorkloads", .product(name: "SeqwallSync", package: "seqwall")] + seqwall),
        // The sync thread's receiving side (opening, decoding) and the worker applying the
        // entries, fed the master's datagrams of sync-profile's stream:
        // `sync-receive-profile [CONNECTIONS-PER-TURN] [TURNS] [KNOWN]`.
        .executableTarget(name: "sync-receive-profile",
                          dependencies: ["SyncWorkloads", "TrackerWorkloads", .product(name: "SeqwallSync", package: "seqwall")] + seqwall),
        // package-benchmark runs every executable target whose folder sits in "Benchmarks/".
        .executableTarget(
            name: "TrackerBenchmark",
            dependencies: ["TrackerWorkloads", .product(name: "Benchmark", package: "package-benchmark")] + seqwall,
            path: "Benchmarks/TrackerBenchmark",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
