// swift-tools-version:6.0
// ZOTune as a library: this package depends on it by path (a release by URL and version works
// the same way: the manifest has no unsafe flags).
import PackageDescription

let package = Package(
    name: "FineTune",
    dependencies: [.package(name: "ZOTune", path: "../..")],
    targets: [
        .executableTarget(name: "FineTune", dependencies: [.product(name: "ZOTune", package: "ZOTune")]),
    ]
)
