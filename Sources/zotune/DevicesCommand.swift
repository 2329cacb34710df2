import ArgumentParser
import ZOAssets
import ZOCore
import ZOCUDA
import ZODistributed
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `zotune devices`: what CUDA this machine offers ZOTune, found at run time.
struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List the GPUs, the CUDA driver and the NVRTC / cuBLAS libraries found at run time (or say plainly that there are none), and whether MPI is there for multi-process runs.",
        discussion: """
            Libraries are looked for in $ZOTUNE_CUDA_LIBS (colon-separated folders), then by the dynamic loader, then in the \
            nvidia/*/lib folders of Python environments (where PyTorch and `pip install nvidia-cuda-nvrtc` put them).
            """
    )

    @Option(help: "Also compile every kernel with NVRTC for this architecture (e.g. 90 for sm_90; default: each GPU's).")
    var compileFor: Int?

    @Flag(help: "Compile every kernel for the GPUs found (or --compile-for).")
    var compile = false

    func run() throws {
        let libraries = CUDALibraries.shared
        var architectures: [Int] = compileFor.map { [$0] } ?? []
        switch libraries.driver {
        case .loaded(let path, let driver):
            let version = (try? driver.version()).map { "\($0 / 1000).\($0 % 1000 / 10)" } ?? "unknown"
            print("driver: \(path) (CUDA \(version))")
            do {
                let devices = try driver.devices()
                if devices.isEmpty { print("GPUs: none") }
                for device in devices {
                    print("GPU \(device.ordinal): \(device.name), \(ByteCount(device.totalMemory)), compute capability "
                          + "\(device.major).\(device.minor), \(device.multiprocessors) SMs")
                    if compileFor == nil { architectures.append(device.architecture) }
                }
            } catch {
                print("GPUs: none usable (\(error))")
            }
        case .missing(let tried):
            print("driver: not found (no NVIDIA driver on this machine); tried \(tried.map(\.path).joined(separator: ", "))")
            print("GPUs: none")
        }
        describe("NVRTC", libraries.nvrtc.path, libraries.nvrtc.table.flatMap { try? KernelCompiler(nvrtc: $0, library: libraries.nvrtc.path ?? "", cacheDirectory: nil) }
            .map { "version \($0.version.major).\($0.version.minor)" }, tried: libraries.nvrtc)
        describe("cuBLAS", libraries.cublas.path, nil, tried: libraries.cublas)
        if libraries.searchPath.pythonFolders.isEmpty {
            print("Python nvidia/*/lib folders: none")
        } else {
            print("Python nvidia/*/lib folders: \(libraries.searchPath.pythonFolders.joined(separator: ", "))")
        }
        describeMPI()
        guard compile || compileFor != nil else { return }
        guard let nvrtc = libraries.nvrtc.table else { throw CUDAError.unavailable("cannot compile kernels: NVRTC was not found") }
        guard !architectures.isEmpty else { throw CUDAError.unavailable("no GPU found: name an architecture with --compile-for 90") }
        let compiler = try KernelCompiler(nvrtc: nvrtc, library: libraries.nvrtc.path ?? "",
                                          cacheDirectory: Assets().home + "/kernels")
        for architecture in Set(architectures).sorted() {
            for source in KernelSource.all {
                let cubin = try compiler.cubin(source, architecture: architecture)
                print("compiled \(source.name) for sm_\(architecture): \(cubin.count) bytes")
            }
        }
    }

    /// Open MPI's library (for `mpirun -np K zotune train`), and this process's place in a launch.
    private func describeMPI() {
        switch MPILibrary.shared {
        case .success(let library): print("MPI: \(library.path) (\(library.version))")
        case .failure(let error): print("MPI: not found (multi-process training needs Open MPI: apt install openmpi-bin); \(error)")
        }
        if let launch = LaunchEnvironment.detect(ProcessInfo.processInfo.environment) {
            print("launched by \(launch.launcher): rank \(launch.rank) of \(launch.size), local rank \(launch.localRank) of \(launch.localSize)")
        }
    }

    private func describe<T>(_ name: String, _ path: String?, _ detail: String?, tried: LibraryStatus<T>) {
        if let path {
            print("\(name): \(path)" + (detail.map { " (\($0))" } ?? ""))
        } else if case .missing(let attempts) = tried {
            print("\(name): not found; tried \(attempts.count) places (set ZOTUNE_CUDA_LIBS to a folder holding it)")
        }
    }
}
