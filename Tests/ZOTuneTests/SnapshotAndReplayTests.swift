import Testing
import ZOCore
import ZOCPU
import ZOModels
import ZOOffload
import ZOOptimizers

/// The arithmetic checkpoints and replays rest on: a flush followed by the next step equals
/// the fused pass bit for bit; a snapshot taken by a step's first pass equals the flushed
/// weights; replaying recorded gradients without forward passes rebuilds the weights.
@Suite struct SnapshotAndReplayTests {
    static let options = MeZOOptions(eps: 1e-2, weightDecay: 0.1, q: 2)

    static func weights(_ runner: any ModelRunner) throws -> [[UInt32]] {
        try runner.copyParametersToHost()
        return runner.model.groups.map { Array(UnsafeBufferPointer(start: $0.storage.baseAddress.assumingMemoryBound(to: UInt32.self), count: $0.layout.count)) }
    }

    static func bits(_ buffers: [HostBuffer], _ model: any CausalLM) -> [[UInt32]] {
        zip(buffers, model.groups).map { Array(UnsafeBufferPointer(start: $0.baseAddress.assumingMemoryBound(to: UInt32.self), count: $1.layout.count)) }
    }

    static func runner(offloaded: Bool, fixture: String = "opt/opt-tiny-f32") throws -> any ModelRunner {
        let model = try OffloadTests.model(fixture, layers: 4)
        let backend = try CPUBackend(budget: 64 << 20, threads: 2)
        return offloaded ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 2))
                         : try ResidentRunner(model: model, backend: backend)
    }

    @Test(arguments: [false, true])
    func flushingBetweenStepsChangesNoBit(offloaded: Bool) throws {
        func run(flushing: Bool) throws -> ([UInt64], [[UInt32]]) {
            let runner = try Self.runner(offloaded: offloaded)
            let plan = try OffloadTests.plan(runner.model)
            let mezo = MeZO(runner: runner, options: Self.options, seed: 5)
            var losses: [UInt64] = []
            for _ in 0..<6 {
                let step = try mezo.step(lr: 1e-2, loss: plan)
                losses += [step.lossPlus.bitPattern, step.lossMinus.bitPattern]
                if flushing { try mezo.flush() }
            }
            try mezo.flush()
            return (losses, try Self.weights(runner))
        }
        let fused = try run(flushing: false), flushed = try run(flushing: true)
        #expect(fused.0 == flushed.0)
        #expect(fused.1 == flushed.1)
    }

    @Test(arguments: [false, true])
    func aSnapshotHoldsTheFlushedWeights(offloaded: Bool) throws {
        let runner = try Self.runner(offloaded: offloaded), reference = try Self.runner(offloaded: false)
        let plan = try OffloadTests.plan(runner.model)
        let mezo = MeZO(runner: runner, options: Self.options, seed: 5), oracle = MeZO(runner: reference, options: Self.options, seed: 5)
        let snapshot = try ParameterSnapshot(model: runner.model)
        for step in 0..<4 {
            _ = try mezo.step(lr: 1e-2, loss: plan, snapshot: step == 3 ? snapshot : nil)
            if step < 3 { _ = try oracle.step(lr: 1e-2, loss: plan) }
        }
        try oracle.flush()
        #expect(Self.bits(snapshot.groups, runner.model) == (try Self.weights(reference)), "snapshot in step 4 = weights after step 3")
        let final = try ParameterSnapshot(model: runner.model)
        try mezo.flush(snapshot: final)
        #expect(Self.bits(final.groups, runner.model) == (try Self.weights(runner)), "snapshot while flushing = flushed weights")
    }

    /// On OPT and on two of the newer families (Qwen3: q/k norms, head_dim apart from C / NH;
    /// Gemma 3: norms on the block outputs, two rotary bases).
    @Test(arguments: ["opt/opt-tiny-f32", "llama/qwen3-f32", "llama/gemma3-f32"])
    func replayingRecordedGradientsRebuildsTheWeights(fixture: String) throws {
        let trained = try Self.runner(offloaded: false, fixture: fixture)
        let plan = try OffloadTests.plan(trained.model)
        let mezo = MeZO(runner: trained, options: Self.options, seed: 5)
        var record: [(Float, [Float])] = []
        for step in 0..<8 {
            let lr: Float = step == 5 ? .infinity : 1e-2  // step 5 blows up: later steps see a non-finite loss and skip
            let result = try mezo.step(lr: lr, loss: plan)
            record.append((lr, result.skipped ? result.projectedGradients.map { _ in .nan } : result.projectedGradients.map(Float.init)))
        }
        try mezo.flush()
        #expect(record.contains { $0.1.contains(where: \.isNaN) }, "the blown-up steps were skipped")
        let replayed = try Self.runner(offloaded: false, fixture: fixture)
        let replay = MeZO(runner: replayed, options: Self.options, seed: 5)
        for (lr, gradients) in record { try replay.replay(lr: lr, gradients: gradients) }
        try replay.flush()
        #expect(try Self.weights(replayed) == Self.weights(trained))
    }
}
