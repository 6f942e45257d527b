// swift-tools-version: 6.2
//
// aoefs — a user-space ATA-over-Ethernet initiator behind FUSE.
// The module graph reads top to bottom; a module imports only the ones above it:
//   AoEProtocol (wire codec, no I/O) → AoEEngine (state machines, driver, Link protocol)
//   → AoELinux (+CAoELinux: AF_PACKET) → AoEFUSE (+CFuse3: libfuse3) → aoefs (CLI)
//   AoETestSupport: the lab (netns, veth, bridge, vblade, nft) and test doubles.
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
        .library(name: "AoEEngine", targets: ["AoEEngine"]),
        .library(name: "AoELinux", targets: ["AoELinux"]),
        .library(name: "AoETarget", targets: ["AoETarget"]),
        .library(name: "AoETestSupport", targets: ["AoETestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(name: "AoEProtocol", swiftSettings: strict),
        .target(
            name: "AoEEngine",
            dependencies: ["AoEProtocol", .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: strict
        ),
        .target(name: "CAoELinux"),
        .target(name: "AoELinux", dependencies: ["AoEProtocol", "AoEEngine", "CAoELinux"], swiftSettings: strict),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .target(name: "AoEFUSE", dependencies: ["AoEEngine", "CFuse3"], swiftSettings: strict),
        .target(name: "AoETarget", dependencies: ["AoEProtocol", "AoEEngine", "CAoELinux"], swiftSettings: strict),
        .target(
            name: "AoETestSupport",
            dependencies: ["AoEProtocol", "AoEEngine", "AoELinux"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "aoefs",
            dependencies: [
                "AoEProtocol", "AoEEngine", "AoELinux", "AoEFUSE", "AoETarget",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(name: "aoe-lab", dependencies: ["AoETestSupport"], swiftSettings: strict),
        .testTarget(name: "AoEProtocolTests", dependencies: ["AoEProtocol", "AoELinux", "AoETestSupport"], swiftSettings: strict),
        .testTarget(
            name: "AoELinuxTests",
            dependencies: ["AoEProtocol", "AoEEngine", "AoELinux", "AoETestSupport", "aoe-lab"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AoEEngineTests", dependencies: ["AoEEngine", "AoEProtocol", "AoETestSupport"], swiftSettings: strict
        ),
        .testTarget(name: "AoETargetTests", dependencies: ["AoETarget", "AoEProtocol"], swiftSettings: strict),
        .testTarget(name: "AoEFUSETests", dependencies: ["AoEFUSE", "aoefs"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
