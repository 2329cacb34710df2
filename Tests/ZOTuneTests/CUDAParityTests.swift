import Testing
import ZOCPU
import ZOCore
import ZOCUDA
import ZOModels
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
/// and on CUDA against the CPU. The debug build runs 4 steps of each training check (its CPU
/// oracle is slow), the release build and `selftest` in scripts/test.sh the full 20 and 6.
@Suite struct BackendParityTests {
    #if DEBUG
    static let steps = 4
    #else
    static let steps = 20
    #endif

    @Test func theCPUPassesAgainstItself() throws {
        let results = BackendParity.run(try CPUBackend(budget: 256 << 20, threads: 2), against: try CPUBackend(budget: 256 << 20, threads: 1),
                                        tolerance: 0, steps: Self.steps)
        // Perturbation and three codecs, then nine checks for every registered family.
        #expect(results.count == 4 + 9 * ModelRegistry.families.count)
        #expect(Set(results.map(\.name)).count == results.count, "every check named once")
        for (name, outcome) in results { #expect(outcome.problem == nil, "\(name): \(outcome)") }
    }

    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process: CUDA parity not run"))
    func cudaMatchesTheCPU() throws {
        let gpu = try #require(GPU.backend)
        let oracle = try CPUBackend(budget: 256 << 20, threads: 2)
        for (name, outcome) in BackendParity.run(gpu, against: oracle, tolerance: 1e-3, steps: Self.steps) {
            #expect(outcome.problem == nil, "\(name): \(outcome)")
        }
    }
}

/// Operations checked one by one on CUDA against the CPU.
@Suite struct CUDAOperationTests {
    /// 13,000 keys: more than one tile of the attention kernel's online softmax (and more than
    /// the 12,288 its earlier single-pass kernel was limited to, which with its static shared
    /// memory did not even fit a GPU's 48 KiB).
    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process"))
    func attentionOverManyKeysMatchesTheCPU() throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        let keys = 13_000
        let shape = AttentionShape(batch: 1, queries: 3, keys: keys, capacity: keys, heads: 2, kvHeads: 1, headSize: 16,
                                   queryStride: 32, kvStride: 16, scale: 0.25)
        var generator = SplitMix64(seed: 9)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float(generator.next() >> 40) / Float(1 << 24) - 0.5 } }
        let q = values(3 * 32), k = values(keys * 16), v = values(keys * 16)
        let mask = (0..<keys).map { Int32($0 % 7 == 3 ? 0 : 1) }
        var outputs: [[Float]] = []
        for backend in [gpu, cpu] as [any Backend] {
            let buffers = [try backend.upload(q, label: "q"), try backend.upload(k, label: "k"), try backend.upload(v, label: "v")]
            let keyMask = try backend.upload(mask, label: "mask"), out = try backend.allocate(3 * 32 * 4, label: "out")
            defer { (buffers + [keyMask, out]).forEach(backend.free) }
            backend.attention(q: buffers[0], k: buffers[1], v: buffers[2], keyMask: keyMask, out: out, shape: shape)
            outputs.append(try backend.read(out, count: 3 * 32, as: Float.self))
        }
        let largest = outputs[1].map(abs).max()!
        let difference = zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max()!
        #expect(difference <= 1e-5 * largest, "largest |Δ| \(difference) against largest |out| \(largest)")
    }

    /// GEMMs with tf32, bf16 or fp16 inputs: logits of both families close to the CPU's (within
    /// what rounding the inputs to 10, 7 or 10 mantissa bits allows), and not equal to the
    /// strict fp32 GEMM's (the inputs really are rounded).
    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process"),
          arguments: [(GEMMPrecision.tf32, 5e-3), (.bf16, 3e-2), (.fp16, 5e-3)])
    func reducedPrecisionGEMMsStayCloseToTheCPU(precision: GEMMPrecision, tolerance: Double) throws {
        let gpu = try CUDABackend(budget: 256 << 20, precision: precision, allocations: .perBuffer)
        let cpu = try CPUBackend(budget: 256 << 20, threads: 2)
        for family in BackendParity.Family.allCases {
            let outcome = try BackendParity.logits(family, gpu, cpu, tolerance: tolerance)
            #expect(outcome.problem == nil, "\(family.rawValue) \(precision): \(outcome)")
            #expect(try BackendParity.logits(family, gpu, cpu, tolerance: 1e-6).problem != nil, "\(family.rawValue) \(precision) is not fp32")
        }
    }

    /// Perturbation passes with more terms than one launch carries (split into launches), with
    /// the snapshot taken between two of them or before the first, bit for bit the CPU's.
    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process"))
    func perturbationWithManyTermsIsTheCPUsBitForBit() throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        for (terms, after) in [(70, 45), (33, 0), (3, 3)] {
            let problem = try BackendParity.perturbation(gpu, cpu, termCount: terms, afterTerms: after, kind: .rademacher)
            #expect(problem == nil, "\(terms) terms, snapshot after \(after): \(problem ?? "")")
        }
    }

    /// A gather reading a tied table perturbed on the fly with more terms than one launch
    /// carries (a late stream of a large offloaded population): the CPU's rows bit for bit.
    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process"))
    func gatheringWithManyTermsIsTheCPUsBitForBit() throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        let terms = (0..<70).map { PerturbationTerm(seed: UInt64($0) * 7919 + 3, coefficient: Float($0 % 5 - 2) * 1e-3) }
        let indices: [Int32] = [5, 0, 5, 9, 2]
        var results: [[Float]] = []
        for backend in [gpu, cpu] as [any Backend] {
            let table = try backend.upload((0..<10 * 37).map { Float($0) * 0.01 - 1 }, label: "table")
            let ids = try backend.upload(indices, label: "indices")
            let out = try backend.allocate(5 * 37 * 4, label: "rows")
            defer { [table, ids, out].forEach(backend.free) }
            backend.gatherRows(table: table, width: 37, indices: ids, count: 5, out: out, accumulate: false,
                               perturbation: RowPerturbation(tensor: 4, terms: terms, kind: .rademacher))
            results.append(try backend.read(out, count: 5 * 37, as: Float.self))
        }
        #expect(results[0].map(\.bitPattern) == results[1].map(\.bitPattern))
    }

    /// The scatter-adds of embedding backward (repeated rows, a skipped padding row) and of
    /// single elements, in the CPU's order: the same sums bit for bit.
    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process"))
    func scatterAddsAreTheCPUsBitForBit() throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        let indices: [Int32] = [3, 1, 3, 0, 3, 2, 1]
        let values = (0..<7 * 5).map { Float($0) * 0.37 - 4 }
        var results: [[Float]] = []
        for backend in [gpu, cpu] as [any GradientBackend] {
            let table = try backend.upload([Float](repeating: 0.5, count: 4 * 5), label: "table")
            let flat = try backend.upload([Float](repeating: 0.25, count: 4), label: "flat")
            let ids = try backend.upload(indices, label: "indices"), rows = try backend.upload(values, label: "values")
            defer { [table, flat, ids, rows].forEach(backend.free) }
            backend.scatterAddRows(rows, width: 5, indices: ids, count: 7, table: table, skipping: 1)
            backend.scatterAdd(rows, indices: ids, count: 7, into: flat)
            results.append(try backend.read(table, count: 20, as: Float.self) + (try backend.read(flat, count: 4, as: Float.self)))
        }
        #expect(results[0] == results[1])
        #expect(results[1][5..<10].allSatisfy { $0 == 0.5 }, "row 1 (the padding index) is left alone")
    }

    /// Optimizer steps (AdamW with decay, SGD with momentum) and bias-gradient column sums follow
    /// the CPU's operations one by one: bit for bit.
    @Test(.enabled(if: GPU.present, "no CUDA (GPU or stand-in) in this process"))
    func optimizerStepsAndColumnSumsAreTheCPUsBitForBit() throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        var generator = SplitMix64(seed: 4)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float(generator.next() >> 40) / Float(1 << 24) - 0.5 } }
        let theta = values(1000), gradient = values(1000), rows = values(7 * 40)
        let rules: [FirstOrderRule] = [.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01), .sgd(momentum: 0.9, weightDecay: 0.1)]
        for rule in rules {
            var results: [[Float]] = []
            for backend in [gpu, cpu] as [any GradientBackend] {
                let parameters = try backend.upload(theta, label: "θ"), gradients = try backend.upload(gradient, label: "g")
                let state = try (0..<rule.stateCount).map { _ in try backend.upload([Float](repeating: 0, count: 1000), label: "state") }
                let x = try backend.upload(rows, label: "x"), sums = try backend.upload([Float](repeating: 1, count: 40), label: "sums")
                defer { ([parameters, gradients, x, sums] + state).forEach(backend.free) }
                for step in 1...3 {
                    backend.optimizerStep(rule, parameters: parameters, gradients: gradients, state: state, count: 1000, step: step,
                                          learningRate: 1e-2, decays: step != 2)
                }
                backend.accumulateColumnSums(x, out: sums, rows: 7, width: 40)
                results.append(try backend.read(parameters, count: 1000, as: Float.self) + (try backend.read(sums, count: 40, as: Float.self))
                               + (try state.flatMap { try backend.read($0, count: 1000, as: Float.self) }))
            }
            #expect(results[0] == results[1], "\(rule)")
        }
    }
}
