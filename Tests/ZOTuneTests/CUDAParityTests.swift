import Testing
import ZOCPU
import ZOCUDA
import ZOParity

/// The CUDA backend of this process: on a GPU, or on the CUDA stand-in that scripts/test.sh
/// loads through ZOTUNE_CUDA_LIBS (each buffer its own allocation, so the stand-in's guard
/// bytes see every buffer's bounds). The parity checks are skipped, and reported as skipped,
/// where neither is found.
enum GPU {
    static let backend: CUDABackend? = try? CUDABackend(budget: 2 << 30, allocations: .perBuffer)
    static var present: Bool { backend != nil }
}

/// Without CUDA libraries, creating the backend is a clear error, not a crash.
@Suite struct CUDABackendAvailabilityTests {
    @Test func creatingTheBackendWithoutCUDASaysWhy() throws {
        let nowhere = CUDALibraries(searchPath: CUDASearchPath(explicitFolders: ["/nonexistent"], pythonFolders: []))
        guard nowhere.driver.table == nil else { return }  // a machine with a real driver found it by the loader's search
        do {
            _ = try CUDABackend(budget: 1 << 20, libraries: nowhere)
            Issue.record("a backend without a driver")
        } catch {
            #expect("\(error)".contains("unavailable"), "\(error)")
        }
    }
}

/// `BackendParity` (what `zotune selftest` runs), on the CPU against itself (checks the checks)
/// and on CUDA against the CPU.
@Suite struct BackendParityTests {
    @Test func theCPUPassesAgainstItself() throws {
        let results = BackendParity.run(try CPUBackend(budget: 256 << 20, threads: 2), against: try CPUBackend(budget: 256 << 20, threads: 1),
                                        tolerance: 0)
        #expect(results.count == 16)
        for (name, problem) in results { #expect(problem == nil, "\(name): \(problem ?? "")") }
    }

    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process: CUDA parity not run"))
    func cudaMatchesTheCPU() throws {
        let gpu = try #require(GPU.backend)
        for (name, problem) in BackendParity.run(gpu, against: try CPUBackend(budget: 256 << 20, threads: 2), tolerance: 1e-3) {
            #expect(problem == nil, "\(name): \(problem ?? "")")
        }
    }
}
