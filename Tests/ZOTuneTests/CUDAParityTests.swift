import Testing
import ZOCore
import ZOCPU
import ZOCUDA
import ZOModels
import ZOOffload
import ZOOptimizers

/// Whether a GPU and the CUDA libraries are present; the parity tests below are skipped
/// (and reported as skipped) otherwise.
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

/// The CUDA backend against the CPU oracle (needs a GPU).
@Suite(.enabled(if: GPU.present, "no GPU on this machine: CUDA parity not run"))
struct CUDAParityTests {
    static func read(_ backend: any Backend, _ buffer: DeviceBuffer, count: Int) throws -> [UInt32] {
        try backend.read(buffer, count: count, as: UInt32.self)
    }

    @Test(arguments: [PerturbationKind.gaussian, .rademacher])
    func noiseIsTheCPUsBitForBit(kind: PerturbationKind) throws {
        let gpu = try #require(GPU.backend)
        let count = 10_000
        let out = try gpu.allocate(count * 4, label: "noise")
        defer { gpu.free(out) }
        for (seed, tensor) in [(UInt64(0), UInt32(0)), (0xDEAD_BEEF_1234, 7), (.max, 123)] {
            gpu.fillNoise(out, count: count, kind: kind, seed: seed, tensor: tensor)
            var expected = [Float](repeating: 0, count: (count + 31) / 32 * 32)
            expected.withUnsafeMutableBufferPointer { buffer in
                for chunk in 0..<(count + 31) / 32 { Noise.chunk(kind, seed: seed, tensor: tensor, chunk: chunk, into: buffer.baseAddress! + chunk * 32) }
            }
            let bits = try Self.read(gpu, out, count: count)
            #expect(bits == expected.prefix(count).map(\.bitPattern), "seed \(seed) tensor \(tensor)")
        }
    }

    @Test func perturbationAndSnapshotAreTheCPUsBitForBit() throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        let count = 4099
        let values = (0..<count).map { Float($0 % 97) * 0.01 - 0.4 }
        let tensors = [PerturbedTensor(offset: 0, count: 1000, id: 3, decays: true), PerturbedTensor(offset: 1000, count: 3099, id: 4, decays: false)]
        let terms = [PerturbationTerm(seed: 11, coefficient: 1e-3, decayCoefficient: 2e-3), PerturbationTerm(seed: 12, coefficient: -2e-3)]
        var results: [[UInt32]] = []
        for backend in [gpu, cpu] as [any Backend] {
            let buffer = try backend.upload(values, label: "parameters")
            let snapshot = try HostBuffer(byteCount: count * 4)
            backend.perturb(buffer, tensors: tensors, terms: terms, decayFactor: 0.999, kind: .gaussian,
                            snapshot: PerturbationSnapshot(host: snapshot, afterTerms: 1))
            results.append(try Self.read(backend, buffer, count: count)
                           + Array(UnsafeBufferPointer(start: snapshot.baseAddress.assumingMemoryBound(to: UInt32.self), count: count)))
            backend.free(buffer)
        }
        #expect(results[0] == results[1])
    }

    @Test(arguments: [LinkFormat.bf16, .fp16, .fp8])
    func codecsAreTheCPUsBitForBit(format: LinkFormat) throws {
        let gpu = try #require(GPU.backend)
        let cpu = try CPUBackend(budget: 64 << 20, threads: 2)
        let count = 1000
        var generator = SplitMix64(seed: 5)
        let values: [Float] = (0..<count).map { i in
            let unit = Float(generator.next() >> 40) / Float(1 << 24) - 0.5
            return i % 7 == 0 ? unit * 1e-6 : unit * 0.6
        }
        var encoded: [[UInt8]] = []
        for backend in [gpu, cpu] as [any Backend] {
            let input = try backend.upload(values, label: "values")
            let out = try backend.allocate(format.encodedBytes(count), label: "encoded")
            backend.encode(input, count: count, format: format, stochasticSeed: 99, out: out)
            encoded.append(try backend.read(out, count: format.encodedBytes(count), as: UInt8.self))
            backend.free(input)
            backend.free(out)
        }
        #expect(encoded[0] == encoded[1])
    }

    /// Logits within 1e-3 relative of the CPU's, and 20 ZO steps (resident and offloaded)
    /// tracking the CPU's losses within 1e-3 relative.
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32"])
    func forwardAndTrainingTrackTheCPU(fixture: String) throws {
        let gpu = try #require(GPU.backend)
        func losses(_ runner: any ModelRunner) throws -> [Double] {
            let plan = try OffloadTests.plan(runner.model)
            let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3), seed: 4)
            return try (0..<20).map { _ in try mezo.step(lr: 1e-3, loss: plan).lossPlus }
        }
        let cpu = try losses(try ResidentRunner(model: try OffloadTests.model(fixture, layers: 4), backend: try CPUBackend(budget: 64 << 20, threads: 2)))
        let resident = try losses(try ResidentRunner(model: try OffloadTests.model(fixture, layers: 4), backend: gpu))
        let offloaded = try losses(try OffloadedRunner(model: try OffloadTests.model(fixture, layers: 4), backend: gpu, plan: ResidencyPlan(slots: 2)))
        for run in [resident, offloaded] {
            let worst = zip(run, cpu).map { abs($0 - $1) / abs($1) }.max()!
            #expect(worst < 1e-3, "\(fixture): largest relative loss difference \(worst)")
        }
    }
}
