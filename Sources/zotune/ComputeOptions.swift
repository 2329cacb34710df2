import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOAssets
import ZOCPU
import ZOCUDA
import ZOModels
import ZOOffload
#if canImport(Glibc)
import Glibc
#endif

/// Where and how a command computes: the CPU backend's threads, its device-memory budget,
/// and whether blocks stream from host memory (`--offload`).
struct ComputeOptions: ParsableArguments {
    @Option(help: "Where to compute: cpu, or cuda (the first GPU; see `zotune devices`).")
    var backend = BackendKind.cpu

    @Option(help: "Compute threads of the CPU backend (GEMM and kernels). Default: all cores.")
    var threads: Int?

    @Flag(help: "Keep transformer blocks in host memory and stream them through --slots device buffers.")
    var offload = false

    @Option(name: .customLong("device-memory"),
            help: "Device memory budget: a size (2GiB, 512MiB, 1e9) or a fraction of the device's memory (0.25; for the CPU, of physical memory). Default: physical memory (CPU), 90% of the GPU's (CUDA).")
    var deviceMemory: String?

    @Option(help: "Rotating block slots with --offload.")
    var slots = 2

    @Option(name: .customLong("resident-blocks"), help: "Blocks kept on the device with --offload: indices and ranges (0,3,10-12).")
    var residentBlocks: String?

    @Option(name: .customLong("offload-format"), help: "How streamed blocks are kept in host memory and sent with --offload: fp32, bf16, fp16 or fp8.")
    var offloadFormat = LinkFormat.fp32

    @Option(name: .customLong("host-storage"),
            help: "With --offload, keep the blocks' host copies in scratch files in this directory (mapped, unlinked at once), so the model may exceed RAM.")
    var hostStorageDirectory: String?

    @Flag(name: .customLong("no-stochastic-rounding"), help: "With a low-bit --offload-format, round write-backs to nearest instead of stochastically.")
    var noStochasticRounding = false

    @Flag(help: "With --backend cuda, the same as --compute-dtype tf32.")
    var tf32 = false

    @Option(name: .customLong("compute-dtype"),
            help: "With --backend cuda, how GEMMs take their fp32 inputs: fp32 (strict), or on tensor cores rounded to tf32, bf16 or fp16 (fp32 accumulation in every case): faster, less exact.")
    var computeDtype: GEMMPrecision?

    @Option(name: .customLong("cuda-allocations"),
            help: "With --backend cuda: arena (one allocation of the whole budget) or per-buffer (a cuMemAlloc per buffer, so compute-sanitizer or the CUDA stand-in sees each buffer's bounds).")
    var cudaAllocations = CUDAAllocations.arena

    @Flag(name: .customLong("decode-by-tensor"),
          help: "With a low-bit --offload-format, keep streamed blocks encoded on the device and decode one fused linear at a time (less device memory, more decode work).")
    var decodeByTensor = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if slots < 1 { throw ValidationError("--slots must be at least 1") }
        _ = try budget(capacity: 1 << 40)
        _ = try residentBlockSet()
        if !offload, residentBlocks != nil || slots != 2 || offloadFormat != .fp32 || hostStorageDirectory != nil {
            throw ValidationError("--slots, --resident-blocks, --offload-format and --host-storage need --offload")
        }
        if tf32, backend != .cuda { throw ValidationError("--tf32 needs --backend cuda (tensor cores)") }
        if computeDtype != nil, backend != .cuda { throw ValidationError("--compute-dtype needs --backend cuda (tensor cores)") }
        if tf32, computeDtype != nil, computeDtype != .tf32 { throw ValidationError("--tf32 and --compute-dtype \(computeDtype!.rawValue) disagree") }
        if cudaAllocations != .arena, backend != .cuda { throw ValidationError("--cuda-allocations needs --backend cuda") }
        if decodeByTensor, !offload || offloadFormat == .fp32 {
            throw ValidationError("--decode-by-tensor needs --offload and a low-bit --offload-format (bf16, fp16 or fp8)")
        }
    }

    /// Where the blocks' host copies live: memory, or scratch files under --host-storage.
    func hostStorage() throws -> HostStorage {
        guard let directory = hostStorageDirectory else { return .memory }
        guard FileSystem.isFolder(directory) == true else {
            throw ValidationError("--host-storage '\(directory)' is not a directory")
        }
        return .files(directory: directory)
    }

    /// The device-memory budget in bytes, a fraction being of `capacity` (the device's memory),
    /// or nil for the backend's default.
    func budget(capacity: @autoclosure () throws -> Int) throws -> Int? {
        guard let text = deviceMemory else { return nil }
        guard let bytes = parseByteSize(text, physical: Double(try capacity())), bytes >= 1 else {
            throw ValidationError("--device-memory '\(text)' is not a size such as 2GiB, 512MiB or 1e9, or a fraction such as 0.25")
        }
        return bytes
    }

    func residentBlockSet() throws -> Set<Int> {
        try residentBlocks.map { try parseBlockList($0, option: "--resident-blocks") } ?? []
    }

    /// The residency plan of --offload with `firstOrderBlocks` blocks held by a first-order tail.
    func plan(firstOrderBlocks: Int = 0) -> ResidencyPlan {
        ResidencyPlan(slots: slots, residentBlocks: (try? residentBlockSet()) ?? [], format: offloadFormat,
                      stochasticRounding: !noStochasticRounding, firstOrderBlocks: firstOrderBlocks, decodeByTensor: decodeByTensor)
    }

    /// The chosen backend with this budget (CUDA: 90% of the GPU's memory by default;
    /// kernels cached under the assets folder): the CPU with `threads` (default: --threads), or
    /// GPU `gpu` (modulo the GPUs there are: ranks beyond them share).
    func makeBackend(threads: Int? = nil, gpu: Int = 0) throws -> any Backend {
        switch backend {
        case .cpu:
            return try CPUBackend(budget: try budget(capacity: sysconf(Int32(_SC_PHYS_PAGES)) * sysconf(Int32(_SC_PAGESIZE))),
                                  threads: threads ?? self.threads)
        case .cuda:
            let gpus = try cudaDevices()
            return try CUDABackend(budget: try budget(capacity: gpus[gpu % gpus.count].totalMemory), ordinal: gpu % gpus.count,
                                   kernelCache: Assets().home + "/kernels", precision: computeDtype ?? (tf32 ? .tf32 : .fp32),
                                   allocations: cudaAllocations)
        }
    }

    /// A runner for `model`: resident, or offloaded with --offload; with a first-order `tail`,
    /// for the blocks before it; with an `adapter` factory (the low-rank estimator's or LoRA's
    /// options), holding its adapter.
    func makeRunner(model: any CausalLM, backend: (any Backend)? = nil, tail: (any RunnerTail)? = nil,
                    adapter: (any LinearAdapterFactory)? = nil) throws -> any ModelRunner {
        let backend = try backend ?? makeBackend()
        if offload {
            let plan = plan(firstOrderBlocks: tail.map { model.blocks.count - $0.firstBlock } ?? 0)
            return try OffloadedRunner(model: model, backend: backend, plan: plan, tail: tail, adapter: adapter)
        }
        return try ResidentRunner(model: model, backend: backend, tail: tail, adapter: adapter)
    }
}

/// The GPUs the CUDA driver sees (at least one, or an error saying why none).
private func cudaDevices() throws -> [CUDADevice] {
    guard let driver = CUDALibraries.shared.driver.table else { throw BackendError.unavailable("no CUDA driver (libcuda.so.1) on this machine") }
    let gpus = try driver.devices()
    guard !gpus.isEmpty else { throw BackendError.unavailable("no GPU found by the CUDA driver") }
    return gpus
}

/// The `--backend` choices.
enum BackendKind: String, ExpressibleByArgument {
    case cpu, cuda
}

/// Block indices in `text`: indices and ranges ("0,3,10-12").
func parseBlockList(_ text: String, option: String) throws -> Set<Int> {
    var blocks: Set<Int> = []
    for part in text.split(separator: ",") {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int(TextFormat.trimmed($0)) }
        guard (1...2).contains(bounds.count), let low = bounds[0], let high = bounds.last!, low >= 0, low <= high else {
            throw ValidationError("\(option) '\(text)': '\(part)' is not a block index or a range such as 10-12")
        }
        blocks.formUnion(low...high)
    }
    return blocks
}

/// Bytes in `text`: a number with an optional unit (B, KB/MB/GB/TB powers of 1000,
/// KiB/MiB/GiB/TiB powers of 1024), or a fraction in (0, 1] of `physical`.
func parseByteSize(_ text: String, physical: Double) -> Int? {
    let units: [(String, Double)] = [("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("TiB", 1_099_511_627_776),
                                     ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("B", 1)]
    let trimmed = TextFormat.trimmed(text)
    for (unit, scale) in units where trimmed.hasSuffix(unit) {
        guard let value = Double(TextFormat.trimmed(trimmed.dropLast(unit.count))), value > 0, value * scale < 9e18 else {
            return nil
        }
        return Int(value * scale)
    }
    guard let value = Double(trimmed), value > 0, value < 9e18 else { return nil }
    return value <= 1 ? Int(value * physical) : Int(value)
}

extension LinkFormat: ExpressibleByArgument {}
extension CUDAAllocations: ExpressibleByArgument {}
extension GEMMPrecision: ExpressibleByArgument {}
