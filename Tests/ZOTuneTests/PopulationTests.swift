import Testing
import ZOCore
import ZOCPU
import ZOModels
import ZOOffload
import ZOOptimizers

/// Population estimators: their coefficients, one sweep per step whatever N, offloaded runs
/// equal to resident ones bit for bit, snapshots and replay; two-sided without normalization
/// is MeZO with q = N.
@Suite struct PopulationTests {
    static let fzoo = MeZOOptions(eps: 1e-2, weightDecay: 0.1, perturbation: .rademacher, population: .fzoo(queries: 4))
    static let twoSided = MeZOOptions(eps: 1e-2, population: PopulationOptions(queries: 3, oneSided: false, normalize: .std))

    @Test func coefficientsFollowTheRules() {
        let losses = [2.0, 2.5, 1.5, 2.25, 1.75]
        let σ = PopulationEstimator.standardDeviation([2.5, 1.5, 2.25, 1.75])
        #expect(abs(σ - (0.625 / 3).squareRoot()) < 1e-15)
        let fzoo = PopulationEstimator(.fzoo(queries: 4))
        #expect(fzoo.streams == [[]] + (0..<4).map { [StreamOffset(direction: $0, multiple: 1)] })
        #expect(fzoo.coefficients(losses: losses, eps: 1e-3) == [0.5 / σ, -0.5 / σ, 0.25 / σ, -0.25 / σ])
        #expect(fzoo.reportedLosses(losses) == (plus: 2.0, minus: 2.0))
        let byEps = PopulationEstimator(PopulationOptions(queries: 4, oneSided: true, normalize: .none))
        #expect(byEps.coefficients(losses: losses, eps: 0.5) == [1, -1, 0.5, -0.5])
        let twoSided = PopulationEstimator(PopulationOptions(queries: 2, oneSided: false, normalize: .std))
        let pairs = [3.0, 1.0, 2.0, 2.0], spread = PopulationEstimator.standardDeviation(pairs)
        #expect(twoSided.coefficients(losses: pairs, eps: 1e-3) == [2 / (2 * spread), 0])
        #expect(fzoo.coefficients(losses: [1, 1, 1, 1, 1], eps: 1e-3) == [0, 0, 0, 0], "no spread: no step")
    }

    /// Losses, coefficients and final weights of `steps` population steps with a flush and an
    /// evaluation in the middle, as bits.
    static func trajectory(_ runner: any ModelRunner, options: MeZOOptions, steps: Int = 6) throws -> [UInt64] {
        let plan = try OffloadTests.plan(runner.model)
        let optimizer = MeZO(runner: runner, options: options, seed: 23)
        var bits: [UInt64] = []
        for step in 0..<steps {
            let result = try optimizer.step(lr: 1e-2, loss: plan)
            #expect(result.projectedGradients.count == options.directions && !result.skipped)
            bits += [result.lossPlus.bitPattern, result.lossMinus.bitPattern] + result.projectedGradients.map(\.bitPattern)
            if step == steps / 2 {
                try optimizer.flush()
                bits += try runner.forward(plan.requests).flatMap { $0.tokenLosses.map { UInt64($0.bitPattern) } }
            }
        }
        try optimizer.flush()
        return bits + (try SnapshotAndReplayTests.weights(runner)).joined().map(UInt64.init)
    }

    /// Tied (OPT) and untied (Llama) tables, one-sided with weight decay and two-sided, several
    /// plans: every stream of a step in one sweep gives the resident runner's numbers.
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32", "llama/llama-untied-bf16", "llama/qwen2-window-f32"])
    func offloadedPopulationsEqualResidentBitForBit(fixture: String) throws {
        for options in [Self.fzoo, Self.twoSided] {
            let resident = try Self.trajectory(try ResidentRunner(model: try OffloadTests.model(fixture, layers: 4),
                                                                  backend: try CPUBackend(budget: 64 << 20, threads: 2)), options: options)
            for plan in [ResidencyPlan(slots: 2), ResidencyPlan(slots: 1, residentBlocks: [2]), ResidencyPlan(slots: 3, overlap: false)] {
                let runner = try OffloadedRunner(model: try OffloadTests.model(fixture, layers: 4),
                                                 backend: try CPUBackend(budget: 64 << 20, threads: 2), plan: plan)
                let offloaded = try Self.trajectory(runner, options: options)
                let difference = offloaded.indices.first { offloaded[$0] != resident[$0] } ?? -1
                #expect(offloaded == resident, "\(fixture), \(options.estimatorSummary), \(plan): first difference at \(difference)")
            }
        }
    }

    /// Two-sided and divided by 2ε, a population is MeZO with q = N, bit for bit.
    @Test func twoSidedByEpsilonIsMeZO() throws {
        let population = MeZOOptions(eps: 1e-2, weightDecay: 0.1, population: PopulationOptions(queries: 3, oneSided: false, normalize: .none))
        let mezo = MeZOOptions(eps: 1e-2, weightDecay: 0.1, q: 3)
        func run(_ options: MeZOOptions) throws -> [UInt64] {
            try Self.trajectory(try SnapshotAndReplayTests.runner(offloaded: false), options: options)
        }
        #expect(try run(population) == run(mezo))
    }

    /// Each streamed block crosses the link once per step, up and down, whatever N.
    @Test func oneSweepPerStep() throws {
        let model = try OffloadTests.model("opt/opt-tiny-f32", layers: 6)
        let runner = try OffloadedRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2), plan: ResidencyPlan(slots: 2))
        let optimizer = MeZO(runner: runner, options: MeZOOptions(population: .fzoo(queries: 8)), seed: 1)
        _ = try optimizer.step(lr: 1e-3, loss: try OffloadTests.plan(model))
        let blockBytes = model.blocks[0].layout.byteCount
        #expect(runner.statistics.sweeps == 1)
        #expect(runner.statistics.bytesUploaded == 6 * blockBytes && runner.statistics.bytesDownloaded == 6 * blockBytes)
    }

    /// A snapshot taken by a step's first pass holds the flushed weights, and the recorded
    /// coefficients (a blown-up step skipped) rebuild the weights without forward passes.
    @Test(arguments: [false, true])
    func snapshotsAndReplay(offloaded: Bool) throws {
        let trained = try SnapshotAndReplayTests.runner(offloaded: offloaded)
        let plan = try OffloadTests.plan(trained.model)
        let optimizer = MeZO(runner: trained, options: Self.fzoo, seed: 5)
        let snapshot = try ParameterSnapshot(model: trained.model)
        var record: [(Float, [Float])] = []
        for step in 0..<8 {
            let lr: Float = step == 5 ? 1e30 : 1e-2
            let result = try optimizer.step(lr: lr, loss: plan, snapshot: step == 7 ? snapshot : nil)
            record.append((lr, result.skipped ? result.projectedGradients.map { _ in .nan } : result.projectedGradients.map(Float.init)))
        }
        try optimizer.flush()
        #expect(record.contains { $0.1.contains(where: \.isNaN) }, "the blown-up steps were skipped")
        let replayed = try SnapshotAndReplayTests.runner(offloaded: false), seventh = try SnapshotAndReplayTests.runner(offloaded: false)
        let replay = MeZO(runner: replayed, options: Self.fzoo, seed: 5), partial = MeZO(runner: seventh, options: Self.fzoo, seed: 5)
        for (lr, gradients) in record { try replay.replay(lr: lr, gradients: gradients) }
        for (lr, gradients) in record.prefix(7) { try partial.replay(lr: lr, gradients: gradients) }
        try replay.flush()
        try partial.flush()
        #expect(try SnapshotAndReplayTests.weights(replayed) == SnapshotAndReplayTests.weights(trained))
        #expect(SnapshotAndReplayTests.bits(snapshot.groups, trained.model) == (try SnapshotAndReplayTests.weights(seventh)))
    }

    /// With low-rank factors every stream adds its own B_s: offloaded equals resident.
    @Test func lowRankPopulationsOffloadBitForBit() throws {
        let options = MeZOOptions(eps: 1e-2, lowRank: LowRankOptions(rank: 2, resampleEvery: 3), population: .fzoo(queries: 3))
        func run(offloaded: Bool) throws -> [UInt64] {
            let model = try OffloadTests.model("llama/llama-gqa-f32", layers: 4), backend = try CPUBackend(budget: 64 << 20, threads: 2)
            let runner: any ModelRunner = offloaded
                ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 2), adapter: options.lowRank)
                : try ResidentRunner(model: model, backend: backend, adapter: options.lowRank)
            return try Self.trajectory(runner, options: options, steps: 7)
        }
        let resident = try run(offloaded: false)
        #expect(try run(offloaded: true) == resident)
    }

    /// `MemoryModel` with N + 1 streams (one pass per stream alive through an offloaded sweep,
    /// a B_s per stream with low-rank factors) equals the arena's high-water mark.
    @Test(arguments: [nil, LowRankOptions(rank: 2, resampleEvery: 2)] as [LowRankOptions?])
    func memoryPredictionsCountEveryStream(lowRank: LowRankOptions?) throws {
        let (b, t) = (2, 7), options = MeZOOptions(eps: 1e-3, lowRank: lowRank, population: .fzoo(queries: 5))
        for plan in [nil, ResidencyPlan(slots: 2), ResidencyPlan(slots: 1, residentBlocks: [1], format: .bf16)] as [ResidencyPlan?] {
            let model = try OffloadTests.model("llama/llama-gqa-f32", layers: 4)
            let backend = try CPUBackend(budget: 1 << 30, threads: 2)
            let runner: any ModelRunner = try plan.map { try OffloadedRunner(model: model, backend: backend, plan: $0, adapter: lowRank) }
                ?? ResidentRunner(model: model, backend: backend, adapter: lowRank)
            let optimizer = MeZO(runner: runner, options: options, seed: 2)
            for _ in 0..<3 { _ = try optimizer.step(lr: 1e-4, batch: try MemoryModelTests.batch(model, batch: b, tokens: t)) }
            var predicted = plan.map { MemoryModel.offloadedStep(model.shape, plan: $0, batch: b, tokens: t, streams: options.streams) }
                ?? MemoryModel.residentStep(model.shape, batch: b, tokens: t)
            if let lowRank {
                predicted = MemoryModel.withLowRank(predicted, model.shape, plan: plan, batch: b, tokens: t, rank: lowRank.rank,
                                                    resampleEvery: lowRank.resampleEvery, streams: options.streams)
            }
            #expect(backend.arena.stats.highWater == predicted.devicePeakBytes, "\(String(describing: lowRank)) \(String(describing: plan))")
        }
    }
}
