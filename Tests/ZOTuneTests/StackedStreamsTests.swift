import Testing
import ZOCore
import ZOCPU
import ZOModels
import ZOOffload
import ZOOptimizers

/// Low-rank-only estimators: a step's streams differ only in their rank-r terms and go through
/// the model stacked (one pass over S·B sequences, one GEMM per linear for all streams). The
/// stacked run agrees with the one-stream-at-a-time run to rounding, offloaded equals resident
/// bit for bit, replay rebuilds it, only the low-rank weights move, and the memory model
/// predicts the stacked step.
@Suite struct StackedStreamsTests {
    static let lowRank = LowRankOptions(rank: 2, resampleEvery: 3, lowRankOnly: true)
    /// FZOO's rule over N = 3 low-rank perturbations (4 streams), and MeZO's two-point (2 streams).
    static let estimators = [MeZOOptions(eps: 1e-2, lowRank: lowRank, population: .fzoo(queries: 3)),
                             MeZOOptions(eps: 1e-2, lowRank: lowRank)]

    static func runner(_ fixture: String, plan: ResidencyPlan?, stacks: Bool = true, budget: Int = 64 << 20) throws -> any ModelRunner {
        let model = try OffloadTests.model(fixture, layers: 4), backend = try CPUBackend(budget: budget, threads: 2)
        if let plan {
            let runner = try OffloadedRunner(model: model, backend: backend, plan: plan, adapter: lowRank)
            runner.stacksStreams = stacks
            return runner
        }
        let runner = try ResidentRunner(model: model, backend: backend, adapter: lowRank)
        runner.stacksStreams = stacks
        return runner
    }

    /// Offloaded, a stacked step gives the resident runner's numbers bit for bit.
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32"])
    func stackedStreamsOffloadBitForBit(fixture: String) throws {
        for options in Self.estimators {
            let resident = try PopulationTests.trajectory(try Self.runner(fixture, plan: nil), options: options, steps: 5)
            let offloaded = try PopulationTests.trajectory(try Self.runner(fixture, plan: ResidencyPlan(slots: 2)), options: options, steps: 5)
            #expect(offloaded == resident, "\(fixture), \(options.estimatorSummary)")
        }
    }

    /// Stacked, each stream reads its own rows of GEMMs over S·R rows instead of R: the losses
    /// of a step agree with one pass per stream to float rounding, and so do the coefficients
    /// (differences of losses divided by their spread) to what that rounding leaves of them
    /// (measured: losses ≤ 1e-7, coefficients ≤ 5e-6 relative) — a stream reading another's
    /// rows would move them by their whole size.
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32"])
    func stackedStreamsAgreeWithOnePassEach(fixture: String) throws {
        for options in Self.estimators {
            func step(stacks: Bool) throws -> MeZOStep {
                let runner = try Self.runner(fixture, plan: nil, stacks: stacks)
                return try MeZO(runner: runner, options: options, seed: 31).step(lr: 1e-2, loss: try OffloadTests.plan(runner.model))
            }
            let stacked = try step(stacks: true), separate = try step(stacks: false)
            let lossError = max(abs(stacked.lossPlus - separate.lossPlus), abs(stacked.lossMinus - separate.lossMinus)) / abs(separate.lossPlus)
            let scale = separate.projectedGradients.map(abs).max()!
            let gradientError = zip(stacked.projectedGradients, separate.projectedGradients).map { abs($0 - $1) }.max()! / scale
            #expect(lossError < 1e-6 && gradientError < 1e-4,
                    "\(fixture), \(options.estimatorSummary): losses \(lossError), coefficients \(gradientError) relative")
        }
    }

    /// Embeddings, norms, biases and the head keep their values; the low-rank weights move.
    @Test func onlyTheLowRankWeightsTrain() throws {
        let runner = try Self.runner("llama/llama-gqa-f32", plan: ResidencyPlan(slots: 2))
        let before = try SnapshotAndReplayTests.weights(runner)
        let optimizer = MeZO(runner: runner, options: Self.estimators[0], seed: 9)
        for _ in 0..<4 { _ = try optimizer.step(lr: 1e-2, loss: try OffloadTests.plan(runner.model)) }
        try optimizer.flush()
        let after = try SnapshotAndReplayTests.weights(runner)
        let adapted = runner.adapter!.adaptedTensorIDs
        var id: UInt32 = 0, moved = 0
        for (group, layout) in runner.model.groups.map(\.layout).enumerated() {
            for spec in layout.specs {
                defer { id += 1 }
                let range = spec.offset..<spec.offset + spec.count
                if adapted.contains(id) {
                    moved += before[group][range] == after[group][range] ? 0 : 1
                } else {
                    #expect(before[group][range] == after[group][range], "\(spec.name) changed")
                }
            }
        }
        #expect(moved == adapted.count, "every low-rank weight moved")
    }

    /// The recorded coefficients rebuild a stacked run's weights without forward passes.
    @Test func replayRebuildsAStackedRun() throws {
        let options = Self.estimators[0]
        let trained = try Self.runner("opt/opt-tiny-f32", plan: ResidencyPlan(slots: 1))
        let optimizer = MeZO(runner: trained, options: options, seed: 4)
        var record: [[Float]] = []
        for _ in 0..<7 { record.append(try optimizer.step(lr: 1e-2, loss: try OffloadTests.plan(trained.model)).projectedGradients.map(Float.init)) }
        try optimizer.flush()
        let replayed = try Self.runner("opt/opt-tiny-f32", plan: nil)
        let replay = MeZO(runner: replayed, options: options, seed: 4)
        for gradients in record { try replay.replay(lr: 1e-2, gradients: gradients) }
        try replay.flush()
        #expect(try SnapshotAndReplayTests.weights(replayed) == SnapshotAndReplayTests.weights(trained))
    }

    /// One pass over S·B sequences at a time: `MemoryModel.stackedLowRankStep` is the arena's
    /// high-water mark, resident and offloaded.
    @Test func memoryPredictionOfAStackedStep() throws {
        let (b, t) = (2, 7), options = Self.estimators[0]
        for plan in [nil, ResidencyPlan(slots: 2), ResidencyPlan(slots: 1, residentBlocks: [1], format: .bf16)] as [ResidencyPlan?] {
            let runner = try Self.runner("llama/llama-gqa-f32", plan: plan, budget: 1 << 30)
            let optimizer = MeZO(runner: runner, options: options, seed: 2)
            for _ in 0..<3 { _ = try optimizer.step(lr: 1e-4, batch: try MemoryModelTests.batch(runner.model, batch: b, tokens: t)) }
            let predicted = MemoryModel.stackedLowRankStep(runner.model.shape, plan: plan, batch: b, tokens: t, rank: Self.lowRank.rank,
                                                           resampleEvery: Self.lowRank.resampleEvery, streams: options.streams)
            let oneEach = MemoryModel.withLowRank(plan.map { MemoryModel.offloadedStep(runner.model.shape, plan: $0, batch: b, tokens: t,
                                                                                       streams: options.streams) }
                                                      ?? MemoryModel.residentStep(runner.model.shape, batch: b, tokens: t),
                                                  runner.model.shape, plan: plan, batch: b, tokens: t, rank: Self.lowRank.rank,
                                                  resampleEvery: Self.lowRank.resampleEvery, streams: options.streams)
            #expect(runner.backend.arena.stats.highWater == predicted.devicePeakBytes, "\(String(describing: plan))")
            #expect(predicted.devicePeakBytes != oneEach.devicePeakBytes, "the stacked step's peak tells it from one pass per stream")
        }
    }
}
