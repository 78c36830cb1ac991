// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "seqwall",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "seqwall", targets: ["seqwall"]),
        // The fuzz targets' entry logic, for the libFuzzer executables in FuzzTargets/ (a package of its
        // own: they link only with -sanitize=fuzzer) and for the corpus replay in `swift test`.
        .library(name: "SeqwallFuzzing", targets: ["SeqwallFuzzing"]),
        // For Benchmarks/, a package of its own so that `make test` never pulls in
        // ordo-one/benchmark: the core it measures, the test support that writes its packets and
        // the rule language that builds its tables.
        .library(name: "SeqwallCore", targets: ["SeqwallCore"]),
        .library(name: "SeqwallTestSupport", targets: ["SeqwallTestSupport"]),
        .library(name: "SeqwallRules", targets: ["SeqwallRules"]),
        // For Benchmarks/sync-profile: the sync protocol's sending side without sockets.
        .library(name: "SeqwallSync", targets: ["SeqwallSync"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // libnetfilter_queue + libmnl, with static inline wrappers for what Swift cannot import.
        .systemLibrary(
            name: "CNetfilterQueue",
            pkgConfig: "libnetfilter_queue",
            providers: [.apt(["libnetfilter-queue-dev", "libmnl-dev"])]
        ),
        // libpcap, for reading pcap and pcapng captures (seqwall replay).
        .systemLibrary(
            name: "CPcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        // libsodium, for the state sync's ChaCha20-Poly1305 sealed in place (SyncCipher).
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // The build's version: VERSION and the git commit, generated before every build.
        .target(name: "SeqwallVersion", plugins: ["BuildVersionPlugin"]),
        .plugin(name: "BuildVersionPlugin", capability: .buildTool()),
        // A software prefetch for the batch warm-up of the address tables' lookups: one static
        // inline C function, inlined into SeqwallCore.
        .target(name: "CPrefetch"),
        // The pure core: packet views, flow keys, TCP tracker, connection table, policy. No I/O.
        .target(name: "SeqwallCore", dependencies: ["CPrefetch"]),
        // The rule language: lexer, parser, checker -> Policy.
        .target(name: "SeqwallRules", dependencies: ["SeqwallCore"]),
        // Control-socket protocol and the output formats shared by daemon and CLI, and the
        // per-queue figures both `stats` and the metrics endpoint show.
        .target(name: "SeqwallControl", dependencies: ["SeqwallCore"]),
        // What the daemon shows of itself, kept pure for tests: the Prometheus text, the metrics
        // endpoint's HTTP request parsing, the drop-log line.
        .target(name: "SeqwallTelemetry", dependencies: ["SeqwallCore", "SeqwallControl"]),
        // State sync between two seqwall nodes (docs/sync-protocol.md): the wire format, its
        // authenticated encryption, sequence numbers, NACKs, resends and coalescing. No sockets.
        .target(
            name: "SeqwallSync",
            dependencies: ["CSodium", "SeqwallCore", "SeqwallControl", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The daemon: NFQUEUE through libmnl, per-queue workers, control socket, signals.
        .target(
            name: "SeqwallDaemon",
            dependencies: [
                "CNetfilterQueue", "SeqwallCore", "SeqwallRules", "SeqwallControl", "SeqwallTelemetry", "SeqwallVersion",
                "SeqwallSync", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Offline replay of a capture through the tracker: capture reader, link layers, records.
        .target(name: "SeqwallReplay", dependencies: ["CPcap", "SeqwallCore", "SeqwallControl"]),
        // What each fuzz target does with one input, and the invariants it checks (README: Fuzzing).
        .target(name: "SeqwallFuzzing", dependencies: ["SeqwallCore", "SeqwallRules", "SeqwallControl", "SeqwallSync"]),
        .executableTarget(
            name: "seqwall",
            dependencies: [
                "SeqwallCore", "SeqwallRules", "SeqwallControl", "SeqwallDaemon", "SeqwallReplay", "SeqwallTelemetry",
                "SeqwallVersion",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What the tests, the fuzz targets and the benchmarks share: packet builders, test
        // addresses, a seeded generator.
        .target(name: "SeqwallTestSupport", dependencies: ["SeqwallCore"]),
        .testTarget(name: "SeqwallCoreTests", dependencies: ["SeqwallCore", "SeqwallTestSupport"]),
        .testTarget(
            name: "SeqwallRulesTests",
            dependencies: ["SeqwallRules", "SeqwallCore", "SeqwallTestSupport"],
            resources: [.copy("Golden")]
        ),
        // swift-crypto's ChaChaPoly is the tests' oracle for SyncCipher's libsodium sealing.
        .testTarget(
            name: "SeqwallSyncTests",
            dependencies: [
                "SeqwallSync", "SeqwallCore", "SeqwallTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "SeqwallControlTests", dependencies: ["SeqwallControl", "SeqwallCore"]),
        // The daemon without root: its queue workers on a fake kernel queue that speaks real
        // netlink bytes; control requests, reloads, the state file through the system-call
        // seam, shutdown.
        .testTarget(
            name: "SeqwallDaemonTests",
            dependencies: [
                "SeqwallDaemon", "SeqwallCore", "SeqwallRules", "SeqwallControl", "SeqwallTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SeqwallTelemetryTests",
            dependencies: ["SeqwallTelemetry", "SeqwallCore", "SeqwallControl", "SeqwallTestSupport"]
        ),
        // Replays FuzzTargets/Corpus (seeds and crash reproducers) through the fuzz entry points.
        .testTarget(name: "SeqwallFuzzTests", dependencies: ["SeqwallFuzzing"]),
        .testTarget(
            name: "SeqwallReplayTests",
            dependencies: ["SeqwallReplay", "SeqwallCore", "SeqwallControl", "SeqwallRules", "SeqwallTestSupport"]
        ),
    ]
)
