import Testing
import ZOCPU
import ZOCUDA
import ZOParity

/// Whether a GPU and the CUDA libraries are present; the parity checks are skipped (and
/// reported as skipped) otherwise.
enum GPU {
    static let backend: CUDABackend? = try? CUDABackend(budget: 2 << 30)
    static var present: Bool { backend != nil }
}

/// Without a GPU, creating the backend is a clear error, not a crash.
@Suite struct CUDABackendAvailabilityTests {
    @Test func creatingTheBackendWithoutAGPUSaysWhy() {
        do {
            _ = try CUDABackend(budget: 1 << 20)
        } catch {
            #expect("\(error)".contains("unavailable"), "\(error)")
        }
    }
}

/// `BackendParity` (what `zotune selftest` runs), on the CPU against itself (checks the checks)
/// and on the GPU against the CPU when one is present.
@Suite struct BackendParityTests {
    @Test func theCPUPassesAgainstItself() throws {
        let results = BackendParity.run(try CPUBackend(budget: 256 << 20, threads: 2), against: try CPUBackend(budget: 256 << 20, threads: 1),
                                        tolerance: 0)
        #expect(results.count == 8)
        for (name, problem) in results { #expect(problem == nil, "\(name): \(problem ?? "")") }
    }

    @Test(.enabled(if: GPU.present, "no GPU on this machine: CUDA parity not run"))
    func theGPUMatchesTheCPU() throws {
        let gpu = try #require(GPU.backend)
        for (name, problem) in BackendParity.run(gpu, against: try CPUBackend(budget: 256 << 20, threads: 2), tolerance: 1e-3) {
            #expect(problem == nil, "\(name): \(problem ?? "")")
        }
    }
}
