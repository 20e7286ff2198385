// swift-tools-version:6.1
//
// Micro-benchmarks of sovnet's packet path with package-benchmark (the
// harness SwiftNIO uses), kept out of the main package so `swift test`
// never times anything. Run from the repository's root:
//   swift package --package-path benchmarks benchmark
// The end-to-end figures come from `sovnet bench` (benchmarks/README.md).
import PackageDescription

let package = Package(
    name: "sovnet-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "sovnet", path: ".."),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PacketPath",
            dependencies: [
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "SovnetWire", package: "sovnet"),
                .product(name: "SovnetLink", package: "sovnet"),
                .product(name: "SovnetCore", package: "sovnet"),
            ],
            path: "Benchmarks/PacketPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
