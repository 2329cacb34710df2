// swift-tools-version:6.0
// Coverage-guided fuzzing of every parser ZOTune runs on files users download (libFuzzer through
// the Swift toolchain's `-sanitize=fuzzer`, with AddressSanitizer and UndefinedBehaviorSanitizer):
// `scripts/fuzz.sh` builds it and runs each target. A separate package, so that the main one's
// products and tests are never linked with libFuzzer's `main`.
import PackageDescription

let package = Package(
    name: "ZOTuneFuzz",
    dependencies: [.package(name: "ZOTune", path: "..")],
    targets: [
        .executableTarget(name: "ZOTuneFuzz", dependencies: [.product(name: "ZOTune", package: "ZOTune")]),
    ]
)
