// swift-tools-version:6.1
//
// Micro-benchmarks of sovnet's packet path, kept out of the main package so
// `swift test` never times anything. Run:
//   swift run -c release --package-path benchmarks sovnet-microbench
import PackageDescription

let package = Package(
    name: "sovnet-benchmarks",
    dependencies: [.package(name: "sovnet", path: "..")],
    targets: [
        .executableTarget(
            name: "sovnet-microbench",
            dependencies: [
                .product(name: "SovnetWire", package: "sovnet"),
                .product(name: "SovnetLink", package: "sovnet"),
            ]
        ),
    ]
)
