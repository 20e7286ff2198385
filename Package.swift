// swift-tools-version:6.1
//
// sovnet: user-mode networking for virtual machines, wire-compatible with
// gvisor-tap-vsock. The modules follow the layers in docs/architecture.md;
// each depends only on the layers above it.
import PackageDescription

// How the executables' release builds link: with lld, packing relative
// relocations (RELR, glibc 2.36+: the loader reads 40 KB of them instead of
// 2 MB and touches fewer pages, benchmarks/README.md), and exporting no
// symbols (the static runtime's link arguments would export every public
// one, 0.5 MB of sovnet-guest).
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic"],
                 .when(platforms: [.linux], configuration: .release)),
]

let package = Package(
    name: "sovnet",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sovnet", targets: ["sovnet"]),
        .executable(name: "sovnet-guest", targets: ["sovnet-guest"]),
        .library(name: "SovnetWire", targets: ["SovnetWire"]),
        .library(name: "SovnetLink", targets: ["SovnetLink"]),
        .library(name: "SovnetCore", targets: ["SovnetCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Layer 1: packet formats over bytes. Pure: no I/O, no dependencies.
        .target(name: "SovnetWire"),

        // C declarations Swift cannot spell: ioctls, sockaddr_vm, sendmmsg.
        .target(name: "CSovnetShim"),
        // libpcap, found through pkg-config (Debian: libpcap-dev), for the fuzz
        // program's seeds; sovnet itself loads it at run time (CSovnetShim).
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        // zlib and liblzma, to read the configuration inside a guest kernel image.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CLzma", pkgConfig: "liblzma", providers: [.apt(["liblzma-dev"])]),

        // Points in time, for code that is also built as Embedded Swift
        // (ContinuousClock's instants, or CLOCK_MONOTONIC's there).
        .target(name: "SovnetTime", dependencies: ["CSovnetShim"]),

        // Layer 2: how frames travel. The framings, pure (length prefixes,
        // the stream decoder, serial markers); then endpoints, tap, capture.
        .target(name: "SovnetFraming", dependencies: ["CSovnetShim"]),
        .target(
            name: "SovnetLink",
            dependencies: [
                "SovnetWire", "SovnetFraming", "SovnetTime", "CSovnetShim",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Layer 3: protocol state machines, free of I/O: events and a clock
        // in, actions out.
        // The host's network (gateway, DHCP and DNS servers, NAT) in SovnetCore;
        // the guest's (DHCP client, router discovery, service supervision) in
        // SovnetGuestCore, so that the guest binary carries none of the host's.
        .target(name: "SovnetCore", dependencies: ["SovnetWire"]),
        .target(name: "SovnetGuestCore", dependencies: ["SovnetWire", "SovnetTime"]),

        // Layer 4: drivers that put the layers to work. The guest side's
        // (sovnet forward, sovnet init, rtnetlink, the log format) link no
        // Foundation and no SwiftNIO, so that the guest binary stays small.
        .target(
            name: "SovnetGuest",
            dependencies: [
                "SovnetWire", "SovnetLink", "SovnetGuestCore", "CSovnetShim", "CZlib", "CLzma",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The host side's: SwiftNIO serves the control API and DNS over TCP;
        // Yams reads the configuration files.
        .target(
            name: "SovnetDrivers",
            dependencies: [
                "SovnetWire", "SovnetLink", "SovnetCore", "SovnetGuestCore", "SovnetGuest", "CSovnetShim", "CZlib", "CLzma",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),

        // Layer 5: the command line; parses options and calls the drivers.
        // The guest's commands (forward, init) are shared by `sovnet` and
        // the small `sovnet-guest`, which links neither Foundation nor SwiftNIO
        // nor swift-argument-parser (it parses its own command lines).
        .target(
            name: "SovnetGuestCommands",
            dependencies: [
                "SovnetGuest", "SovnetLink", "SovnetWire",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "sovnet-guest",
            dependencies: ["SovnetGuestCommands", "SovnetGuest", "SovnetLink"],
            linkerSettings: releaseLinking
        ),
        .executableTarget(
            name: "sovnet",
            dependencies: [
                "SovnetDrivers", "SovnetGuest", "SovnetGuestCommands", "SovnetLink", "SovnetCore", "SovnetGuestCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: releaseLinking
        ),

        // Fuzz targets for every parser, framing decoder and state machine,
        // and the proxy's frame input (docs/reliability.md). No package
        // dependencies, so that a sanitized build of them is quick.
        .target(name: "SovnetFuzz", dependencies: ["SovnetWire", "SovnetFraming", "SovnetCore", "SovnetGuestCore"]),
        // Their program: a libFuzzer binary when built by scripts/fuzz, a
        // replay and seeding tool otherwise.
        .executableTarget(name: "sovnet-fuzz", dependencies: ["SovnetFuzz", "CPcap"],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),

        .testTarget(name: "SovnetWireTests", dependencies: ["SovnetWire", "SovnetLink"]),
        .testTarget(name: "SovnetCoreTests", dependencies: ["SovnetCore", "SovnetGuestCore", "SovnetWire", "SovnetLink", "SovnetFuzz"],
                    exclude: ["FuzzRegressions"]),
        .testTarget(name: "SovnetFramingTests", dependencies: ["SovnetFraming"]),
        .testTarget(
            name: "SovnetLinkTests",
            dependencies: ["SovnetLink", "SovnetWire", "CSovnetShim"]
        ),
        .testTarget(
            name: "SovnetGuestTests",
            dependencies: ["SovnetGuest", "SovnetGuestCommands", "SovnetLink", "SovnetWire", "SovnetGuestCore", "CSovnetShim",
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "SovnetDriversTests",
            dependencies: ["SovnetDrivers", "SovnetLink", "SovnetWire", "SovnetCore", "SovnetGuestCore", "CSovnetShim"],
            exclude: ["Golden"]
        ),
        .testTarget(name: "SovnetCLITests", dependencies: ["sovnet", "SovnetLink", "SovnetDrivers", "CSovnetShim"],
                    exclude: ["Golden"]),
    ]
)
