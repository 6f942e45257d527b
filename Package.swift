// swift-tools-version: 6.2
//
// aoefs — a user-space ATA-over-Ethernet initiator behind FUSE.
// The module graph is a chain; a module imports only the ones above it:
//   AoEProtocol  wire codec, no I/O
//   FUSEProtocol the FUSE kernel protocol as a codec, no I/O (beside the chain; AoEFUSE's own core)
//   AoECore      the initiator's pure state machines (router, sector scheduler, path set,
//                MTU negotiator, windows, RTT), configuration, the Link protocol;
//                no threads, no glibc, no syscalls
//   AoELinux     (+CAoELinux) the place for syscalls: AF_PACKET links, rtnetlink, io_uring, the
//                eventfd wake-up, the lock, the EINTR-retrying helper, threads, child processes,
//                syslog (KernelChannel's read/writev on /dev/fuse and BackingFile's
//                preadv2/pwrite are the two others, each the one caller of its calls)
//   AoEEngine    the driver: an event loop per link runs EngineCore, each pass's Outbox
//                flushed once; the block API and its range locks
//   AoEFUSE      (+CFuse3: libfuse3 mounts) our FUSE core, the tree, the mount's lifecycle
//   aoefs        the CLI
// Beside the chain: AoETarget (`aoefs serve`: AoEProtocol, AoECore, AoELinux) and
// AoETestSupport (the lab: netns, veth, bridge, vblade, nft; test doubles; test-only helpers).
import PackageDescription

/// Every target of ours: Swift 6 language mode (strict concurrency) and warnings as errors.
let strict: [SwiftSetting] = [
    .treatAllWarnings(as: .error),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "aoefs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "aoefs", targets: ["aoefs"]),
        .library(name: "AoEProtocol", targets: ["AoEProtocol"]),
        .library(name: "FUSEProtocol", targets: ["FUSEProtocol"]),
        .library(name: "AoECore", targets: ["AoECore"]),
        .library(name: "AoEEngine", targets: ["AoEEngine"]),
        .library(name: "AoELinux", targets: ["AoELinux"]),
        .library(name: "AoETarget", targets: ["AoETarget"]),
        .library(name: "AoETestSupport", targets: ["AoETestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // sys/metrics in the Prometheus text format (issue 25).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(name: "AoEProtocol", swiftSettings: strict),
        // The FUSE kernel protocol as a codec, like AoEProtocol: no I/O (issue 15).
        .target(name: "FUSEProtocol", swiftSettings: strict),
        .target(
            name: "AoECore",
            dependencies: ["AoEProtocol", .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: strict
        ),
        // `aoefs doctor`'s facts (the engine's snapshots, typed, as the mount offers them in
        // sys/facts.json) and its diagnosis (pure, on the facts).
        .target(name: "AoEDoctor", dependencies: ["AoEProtocol", "AoECore", "AoEEngine"], swiftSettings: strict),
        .target(name: "CAoELinux"),
        .target(name: "AoELinux", dependencies: ["AoEProtocol", "AoECore", "CAoELinux"], swiftSettings: strict),
        .target(
            name: "AoEEngine",
            dependencies: [
                "AoEProtocol", "AoECore", "AoELinux",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .target(
            name: "AoEFUSE",
            dependencies: ["AoEProtocol", "AoECore", "AoEDoctor", "AoELinux", "AoEEngine", "FUSEProtocol", "CFuse3"],
            swiftSettings: strict),
        .target(
            name: "AoETarget", dependencies: ["AoEProtocol", "AoECore", "AoELinux", "CAoELinux"], swiftSettings: strict),
        .target(
            name: "AoETestSupport",
            dependencies: ["AoEProtocol", "AoECore", "AoEEngine", "AoELinux", "FUSEProtocol"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aoefs",
            dependencies: [
                "AoEProtocol", "AoECore", "AoEDoctor", "AoEEngine", "AoELinux", "AoEFUSE", "AoETarget",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aoe-lab", dependencies: ["AoETestSupport", "AoELinux", "AoEProtocol"], swiftSettings: strict),
        .testTarget(
            name: "AoEProtocolTests", dependencies: ["AoEProtocol", "AoELinux", "AoETestSupport"], swiftSettings: strict
        ),
        // The lab: every module end to end over real things (netns, veth, vblade, FUSE mounts,
        // the CLI), in folders named after the module each test is about. Needs root.
        .testTarget(
            name: "AoELabTests",
            dependencies: ["AoEProtocol", "AoECore", "AoEEngine", "AoELinux", "AoETestSupport", "aoe-lab"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AoEDoctorTests",
            dependencies: ["AoEDoctor", "AoECore", "AoEEngine", "AoEProtocol", "AoETestSupport"],
            swiftSettings: strict),
        // AoECore's state machines, each with its table tests (no threads, no sockets).
        .testTarget(
            name: "AoECoreTests", dependencies: ["AoECore", "AoEProtocol", "AoETestSupport"], swiftSettings: strict),
        .testTarget(
            name: "AoEEngineTests", dependencies: ["AoECore", "AoEEngine", "AoEProtocol", "AoETestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "FUSEProtocolTests", dependencies: ["FUSEProtocol", "AoETestSupport"], swiftSettings: strict),
        .testTarget(
            name: "AoETargetTests", dependencies: ["AoETarget", "AoECore", "AoEProtocol"], swiftSettings: strict),
        .testTarget(
            name: "AoEFUSETests",
            dependencies: [
                "AoEFUSE", "AoECore", "AoEDoctor", "AoEEngine", "AoELinux", "AoEProtocol", "AoETestSupport",
                "FUSEProtocol", "aoefs",
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
