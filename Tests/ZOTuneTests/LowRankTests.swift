import Foundation
import Testing
import ZOCPU
import ZOCore
import ZOModels
import ZOOffload
import ZOOptimizers

/// The low-rank ZO estimator: its two passes evaluate the loss at W ± ε·U Vᵀ/√r, its update
/// is A Vᵀ folded into W, offloaded runs reproduce resident ones bit for bit, and a streamed
/// block goes back to host memory only when A Vᵀ is folded in.
@Suite struct LowRankTests {
    /// The first `count` values of the Gaussian stream (seed, tensor).
    static func stream(seed: UInt64, tensor: UInt32, count: Int) -> [Float] {
        var values = [Float](repeating: 0, count: (count + 31) / 32 * 32)
        values.withUnsafeMutableBufferPointer { buffer in
            for chunk in 0..<buffer.count / 32 { Noise.chunk(.gaussian, seed: seed, tensor: tensor, chunk: chunk, into: buffer.baseAddress! + chunk * 32) }
        }
        return Array(values.prefix(count))
    }

    static func batch(_ model: any CausalLM) throws -> TokenBatch {
        try model.makeBatch([[5, 9, 3, 17, 2, 11, 4], [8, 4, 6, 1, 7, 2, 9]])
    }

    /// Runs `steps` low-rank MeZO steps and flushes; returns every group's values and the losses.
    static func train(_ fixture: String, offloaded: Bool, steps: Int, options: LowRankOptions, format: LinkFormat = .fp32,
                      statistics: ((OffloadStatistics) -> Void)? = nil) throws -> (groups: [[Float]], losses: [Double]) {
        let model = try OffloadTests.model(fixture, layers: 3)
        let backend = try CPUBackend(budget: 256 << 20, threads: 2)
        let runner: any ModelRunner = offloaded
            ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 1, format: format), adapter: options)
            : try ResidentRunner(model: model, backend: backend, adapter: options)
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3, lowRank: options), seed: 11)
        var losses: [Double] = []
        for _ in 0..<steps {
            let step = try mezo.step(lr: 1e-3, batch: try batch(model))
            losses += [step.lossPlus, step.lossMinus]
        }
        try mezo.flush()
        if let offloader = runner as? OffloadedRunner { statistics?(offloader.statistics) }
        try runner.copyParametersToHost()
        return (model.groups.map { Array(UnsafeBufferPointer(start: $0.storage.floats, count: $0.layout.count)) }, losses)
    }

    @Test(arguments: ["opt/opt-odd-heads-f16", "llama/llama-gqa-f32"])
    func offloadedEqualsResident(fixture: String) throws {
        let options = LowRankOptions(rank: 2, resampleEvery: 2)
        let resident = try Self.train(fixture, offloaded: false, steps: 5, options: options)
        let offloaded = try Self.train(fixture, offloaded: true, steps: 5, options: options)
        #expect(resident.losses == offloaded.losses)
        #expect(resident.groups == offloaded.groups)
        let before = try OffloadTests.model(fixture, layers: 3)
        #expect(resident.groups[1] != Array(UnsafeBufferPointer(start: before.blocks[0].storage.floats, count: before.blocks[0].layout.count)))
    }

    /// Downloads happen at folds only: every ν steps and at the final flush, against every
    /// step for full MeZO; uploads stay one sweep per step.
    @Test func aStreamedBlockIsWrittenBackOncePerEpoch() throws {
        var lowRank = OffloadStatistics(), full = OffloadStatistics()
        _ = try Self.train("opt/opt-tiny-f32", offloaded: true, steps: 6, options: LowRankOptions(rank: 1, resampleEvery: 3)) { lowRank = $0 }
        let model = try OffloadTests.model("opt/opt-tiny-f32", layers: 3)
        let backend = try CPUBackend(budget: 256 << 20, threads: 2)
        let runner = try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 1))
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3), seed: 11)
        for _ in 0..<6 { _ = try mezo.step(lr: 1e-3, batch: try Self.batch(model)) }
        try mezo.flush()
        full = runner.statistics
        let blockBytes = model.blocks.reduce(0) { $0 + $1.layout.byteCount }
        #expect(full.bytesDownloaded == 7 * blockBytes, "6 steps and the flush")
        #expect(lowRank.bytesDownloaded == 2 * blockBytes, "the fold at step 3 and the final flush's")
        #expect(lowRank.bytesUploaded == 6 * blockBytes + 2 * blockBytes, "a sweep per step and per fold")
    }

    /// One step by hand: L+ is the loss at W + (ε/√r)·U Vᵀ (and the other tensors at θ + εz),
    /// and after the flush W moved by −(lr·g/√r)·U Vᵀ.
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-untied-bf16", "llama/mistral-window-bf16", "llama/gemma3-f32"])
    func theStepIsTheLowRankEstimator(fixture: String) throws {
        let r = 3, eps: Float = 1e-3, lr: Float = 1e-2
        let model = try OffloadTests.model(fixture, layers: 2)
        let original = model.groups.map { Array(UnsafeBufferPointer(start: $0.storage.floats, count: $0.layout.count)) }
        let backend = try CPUBackend(budget: 256 << 20, threads: 2)
        let runner = try ResidentRunner(model: model, backend: backend, adapter: LowRankOptions(rank: r, resampleEvery: 10))
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: eps, lowRank: LowRankOptions(rank: r, resampleEvery: 10)), seed: 11)
        let step = try mezo.step(lr: lr, batch: try Self.batch(model))
        try mezo.flush()
        try runner.copyParametersToHost()

        let seed = mezo.seed(step: 0, perturbation: 0), vSeed = mezo.lowRankSeed(epoch: 0)
        let ids = model.perturbedTensors, lowRankIDs = runner.adapter!.adaptedTensorIDs
        /// θ + scale·(the step's direction) for every tensor.
        func moved(_ scale: Float, uScale: Float) -> [[Float]] {
            model.groups.enumerated().map { g, group in
                var values = original[g]
                for (spec, tensor) in zip(group.layout.specs, ids[g]) {
                    if lowRankIDs.contains(tensor.id) {
                        let (rows, columns) = (spec.shape[0], spec.shape[1])
                        let u = Self.stream(seed: seed, tensor: tensor.id, count: rows * r)
                        let vt = Self.stream(seed: vSeed, tensor: tensor.id, count: r * columns)
                        for i in 0..<rows {
                            for j in 0..<columns {
                                var sum: Float = 0
                                for k in 0..<r { sum += u[i * r + k] * vt[k * columns + j] }
                                values[spec.offset + i * columns + j] += uScale * sum
                            }
                        }
                    } else {
                        let z = Self.stream(seed: seed, tensor: tensor.id, count: spec.count)
                        for e in 0..<spec.count { values[spec.offset + e] += scale * z[e] }
                    }
                }
                return values
            }
        }
        // L+ from a plain forward at the explicitly perturbed weights.
        let probe = try OffloadTests.model(fixture, layers: 2)
        for (group, values) in zip(probe.groups, moved(eps, uScale: eps / Float(r).squareRoot())) {
            values.withUnsafeBytes { group.storage.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        let plus = try ResidentRunner(model: probe, backend: backend).forward(try Self.batch(probe)).meanLoss
        #expect(abs(plus - step.lossPlus) <= 1e-5 * abs(plus), "L+ \(step.lossPlus), at the perturbed weights \(plus)")
        // The update.
        let g = Float(step.projectedGradient)
        let expected = moved(-lr * g, uScale: -lr * g / Float(r).squareRoot())
        for (g, group) in model.groups.enumerated() {
            let actual = Array(UnsafeBufferPointer(start: group.storage.floats, count: group.layout.count))
            let worst = zip(actual, expected[g]).map { abs($0 - $1) }.max()!
            let moved = zip(original[g], expected[g]).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-3 * moved + 1e-7, "\(group.label): max |Δ| \(worst), update size \(moved)")
        }
    }
}

extension LowRankTests {
    /// Replaying a low-rank run's projected gradients (V draws, A updates and folds, no
    /// forward pass) rebuilds its weights bit for bit, offloaded onto resident.
    @Test func replayRebuildsALowRankRun() throws {
        let options = LowRankOptions(rank: 2, resampleEvery: 3)
        let model = try OffloadTests.model("llama/llama-gqa-f32", layers: 3)
        let backend = try CPUBackend(budget: 256 << 20, threads: 2)
        let trained = try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 1), adapter: options)
        let mezo = MeZO(runner: trained, options: MeZOOptions(eps: 1e-3, lowRank: options), seed: 4)
        var record: [[Float]] = []
        for _ in 0..<7 { record.append(try mezo.step(lr: 1e-2, batch: try Self.batch(model)).projectedGradients.map(Float.init)) }
        try mezo.flush()
        try trained.copyParametersToHost()
        let replayedModel = try OffloadTests.model("llama/llama-gqa-f32", layers: 3)
        let replayed = try ResidentRunner(model: replayedModel, backend: backend, adapter: options)
        let replay = MeZO(runner: replayed, options: MeZOOptions(eps: 1e-3, lowRank: options), seed: 4)
        for gradients in record { try replay.replay(lr: 1e-2, gradients: gradients) }
        try replay.flush()
        try replayed.copyParametersToHost()
        for (a, b) in zip(model.groups, replayedModel.groups) {
            #expect(Array(UnsafeBufferPointer(start: a.storage.floats, count: a.layout.count))
                == Array(UnsafeBufferPointer(start: b.storage.floats, count: b.layout.count)), "\(a.label)")
        }
    }
}
