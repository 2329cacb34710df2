import Testing
import ZOCore
import ZOCPU
import ZOModels
import ZOOffload
import ZOOptimizers
import ZOTasks
import ZOTraining

/// The memory model's predictions against the arena's measured high-water marks.
@Suite struct MemoryModelTests {
    /// A batch of B random sequences of T tokens.
    static func batch(_ model: any CausalLM, batch: Int, tokens: Int) throws -> TokenBatch {
        var generator = SplitMix64(seed: 4)
        return try model.makeBatch((0..<batch).map { _ in (0..<tokens).map { _ in Int(generator.next() % UInt64(model.vocabSize)) } })
    }

    /// The arena's high-water mark over two ZO steps (the second applies the first's update).
    static func measuredPeak(_ model: any CausalLM, plan: ResidencyPlan?, batch: TokenBatch) throws -> Int {
        let backend = try CPUBackend(budget: 1 << 30, threads: 2)
        let runner: any ModelRunner = try plan.map { try OffloadedRunner(model: model, backend: backend, plan: $0) }
            ?? ResidentRunner(model: model, backend: backend)
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3), seed: 2)
        for _ in 0..<2 { _ = try mezo.step(lr: 1e-4, batch: batch) }
        return backend.arena.stats.highWater
    }

    static let plans: [ResidencyPlan] = [
        ResidencyPlan(slots: 1), ResidencyPlan(slots: 2), ResidencyPlan(slots: 3, residentBlocks: [0, 2]),
        ResidencyPlan(slots: 2, format: .bf16), ResidencyPlan(slots: 4, format: .fp8),
        ResidencyPlan(slots: 2, format: .bf16, decodeByTensor: true), ResidencyPlan(slots: 1, residentBlocks: [1], format: .fp8, decodeByTensor: true),
    ]

    @Test(arguments: ["opt/opt-tiny-f32", "opt/opt-350m-style-bf16", "llama/llama-gqa-f32", "llama/llama-untied-bf16",
                      "llama/qwen3-f32"])
    func predictionsMatchTheHighWaterMark(fixture: String) throws {
        for (b, t) in [(1, 5), (3, 11)] {
            let model = try OffloadTests.model(fixture, layers: 4)
            let tokens = try Self.batch(model, batch: b, tokens: t)
            let resident = MemoryModel.residentStep(model.shape, batch: b, tokens: t).devicePeakBytes
            #expect(try Self.measuredPeak(model, plan: nil, batch: tokens) == resident, "\(fixture) resident B \(b) T \(t)")
            for plan in Self.plans {
                let predicted = MemoryModel.offloadedStep(model.shape, plan: plan, batch: b, tokens: t).devicePeakBytes
                let measured = try Self.measuredPeak(try OffloadTests.model(fixture, layers: 4), plan: plan, batch: tokens)
                #expect(measured == predicted, "\(fixture) \(plan) B \(b) T \(t)")
            }
        }
    }

    /// A named shape's prediction comes from its config alone and equals the built model's, for
    /// every family's shapes that stay small with 2 blocks (under 800 M parameters: the rest
    /// differ in sizes only; Llama-like heads tied and untied), and the parameter counts are the
    /// published models'.
    @Test func shapesFromConfigsEqualShapesOfModels() throws {
        let small = NamedShape.all.map { ($0.name, $0.shape.truncated(to: 2)) }.filter { $0.1.shape.parameterCount < 800_000_000 }
        let families = Set(small.map { ($0.1.config as? LlamaConfig)?.modelType ?? "opt" })
        #expect(families == Set(ModelRegistry.architectures), "the small shapes cover every family: \(families)")
        for (name, shape) in small {
            #expect(shape.shape == (try shape.makeModel()).shape, "\(name)")
            guard var config = shape.config as? LlamaConfig else { continue }
            config.tieWordEmbeddings.toggle()
            #expect(config.shape == (try LlamaModel(config: config)).shape, "\(name), tied \(config.tieWordEmbeddings)")
        }
        // Parameter counts of the published models (their model cards, rounded as there).
        for (name, low, high) in [("opt-175b", 174_000_000_000, 176_000_000_000), ("smollm2-135m", 134_000_000, 135_000_000),
                                  ("llama-3.1-8b", 8_000_000_000, 8_050_000_000), ("llama-3.1-70b", 70_500_000_000, 70_600_000_000),
                                  ("llama-3.1-405b", 405_000_000_000, 406_000_000_000),
                                  ("qwen2.5-0.5b", 490_000_000, 500_000_000), ("qwen2.5-7b", 7_600_000_000, 7_620_000_000),
                                  ("qwen3-0.6b", 590_000_000, 610_000_000), ("qwen3-8b", 8_150_000_000, 8_250_000_000),
                                  ("qwen3-32b", 32_700_000_000, 32_850_000_000), ("mistral-7b-v0.1", 7_230_000_000, 7_250_000_000),
                                  ("phi-3-mini", 3_810_000_000, 3_830_000_000), ("gemma-2-2b", 2_610_000_000, 2_620_000_000),
                                  ("gemma-2-9b", 9_240_000_000, 9_245_000_000), ("gemma-2-27b", 27_220_000_000, 27_230_000_000),
                                  ("gemma-3-1b", 999_000_000, 1_000_000_000)] {
            let count = try NamedShape.named(name).shape.parameterCount
            #expect((low...high).contains(count), "\(name): \(count)")
        }
    }

    /// The traffic the model predicts is what the offloader counts.
    @Test func predictedTrafficIsCounted() throws {
        for (format, byTensor) in [(LinkFormat.fp32, false), (.fp16, false), (.fp8, false), (.fp8, true)] {
            let model = try OffloadTests.model("opt/opt-tiny-f32", layers: 5)
            let plan = ResidencyPlan(slots: 2, residentBlocks: [1], format: format, decodeByTensor: byTensor)
            let runner = try OffloadedRunner(model: model, backend: try CPUBackend(budget: 1 << 28, threads: 2), plan: plan)
            let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3), seed: 2)
            _ = try mezo.step(lr: 1e-4, batch: try Self.batch(model, batch: 2, tokens: 6))
            let predicted = MemoryModel.offloadedStep(model.shape, plan: plan, batch: 2, tokens: 6)
            #expect(runner.statistics.bytesUploaded == predicted.uploadBytesPerStep, "\(format)")
            #expect(runner.statistics.bytesDownloaded == predicted.downloadBytesPerStep, "\(format)")
        }
    }
}

extension MemoryModelTests {
    /// Hybrid and first-order-only steps, resident and offloaded, AdamW or SGD state on the
    /// device or the host, ZO blocks decoded whole or by tensor: the prediction equals the
    /// arena's high-water mark over two steps.
    @Test(arguments: ["opt/opt-tiny-f32", "opt/opt-350m-style-bf16", "llama/llama-gqa-f32", "llama/llama-untied-bf16"])
    func firstOrderPredictionsMatchTheHighWaterMark(fixture: String) throws {
        let (b, t) = (3, 9)
        let cases: [(k: Int, zeroOrder: Bool, plan: ResidencyPlan?, rule: FirstOrderRule, placement: OptimizerStatePlacement)] = [
            (1, true, nil, .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0), .device),
            (2, false, nil, .sgd(momentum: 0.9, weightDecay: 0), .device),
            (1, true, ResidencyPlan(slots: 2, firstOrderBlocks: 1), .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0), .host),
            (2, false, ResidencyPlan(slots: 1, residentBlocks: [0], format: .bf16, firstOrderBlocks: 2), .sgd(momentum: 0, weightDecay: 0), .device),
            (1, true, ResidencyPlan(slots: 2, format: .fp8, firstOrderBlocks: 1, decodeByTensor: true), .sgd(momentum: 0.9, weightDecay: 0), .device),
        ]
        for c in cases {
            let model = try OffloadTests.model(fixture, layers: 4)
            var generator = SplitMix64(seed: 4)
            let sequences = (0..<b).map { _ in (0..<t).map { _ in Int(generator.next() % UInt64(model.vocabSize)) } }
            let backend = try CPUBackend(budget: 1 << 30, threads: 2)
            let tail = try FirstOrderTail(model: model, backend: backend, firstBlock: model.blocks.count - c.k)
            let runner: any ModelRunner = try c.plan.map { try OffloadedRunner(model: model, backend: backend, plan: $0, tail: tail) }
                ?? ResidentRunner(model: model, backend: backend, tail: tail)
            let settings = FirstOrderOptions(blocks: c.k, zeroOrder: c.zeroOrder, rule: c.rule, learningRate: 1e-3, statePlacement: c.placement)
            let options = TrainingOptions(steps: 2, batchSize: b, schedule: LearningRateSchedule(base: 1e-4, totalSteps: 2),
                                          mezo: MeZOOptions(eps: 1e-3), seed: 2, firstOrder: settings)
            let trainer = Trainer(runner: runner, task: LMTrainingTask(train: sequences, heldOut: nil), options: options,
                                  firstOrder: try FirstOrderOptimizer(tail: tail, rule: c.rule, placement: c.placement))
            _ = try trainer.run { _ in }
            let predicted = MemoryModel.firstOrderStep(model.shape, plan: c.plan, batch: b, tokens: t, firstOrder: FirstOrderPlan(
                blocks: c.k, zeroOrder: c.zeroOrder, deviceStateBuffers: c.placement == .device ? c.rule.stateCount : 0))
            #expect(backend.arena.stats.highWater == predicted.devicePeakBytes, "\(fixture) \(c)")
        }
    }
}

extension MemoryModelTests {
    /// The low-rank estimator's factors, scratch and packed biases and norms: predicted peak
    /// equals the high-water mark (resident and offloaded, over folds), and the offloader
    /// writes blocks back only at folds, as the amortized prediction says.
    @Test(arguments: ["opt/opt-350m-style-bf16", "llama/llama-gqa-f32"])
    func lowRankPredictionsMatchTheHighWaterMark(fixture: String) throws {
        let (b, t) = (2, 7), options = LowRankOptions(rank: 3, resampleEvery: 2)
        for plan in [nil, ResidencyPlan(slots: 1), ResidencyPlan(slots: 2, residentBlocks: [1], format: .bf16)] as [ResidencyPlan?] {
            let model = try OffloadTests.model(fixture, layers: 4)
            let backend = try CPUBackend(budget: 1 << 30, threads: 2)
            let runner: any ModelRunner = try plan.map { try OffloadedRunner(model: model, backend: backend, plan: $0, adapter: options) }
                ?? ResidentRunner(model: model, backend: backend, adapter: options)
            let mezo = MeZO(runner: runner, options: MeZOOptions(eps: 1e-3, lowRank: options), seed: 2)
            let tokens = try Self.batch(model, batch: b, tokens: t)
            (runner as? OffloadedRunner)?.resetStatistics()
            for _ in 0..<5 { _ = try mezo.step(lr: 1e-4, batch: tokens) }
            let base = plan.map { MemoryModel.offloadedStep(model.shape, plan: $0, batch: b, tokens: t) }
                ?? MemoryModel.residentStep(model.shape, batch: b, tokens: t)
            let predicted = MemoryModel.withLowRank(base, model.shape, plan: plan, batch: b, tokens: t, rank: options.rank,
                                                    resampleEvery: options.resampleEvery)
            #expect(backend.arena.stats.highWater == predicted.devicePeakBytes, "\(fixture) \(String(describing: plan))")
            if let offloader = runner as? OffloadedRunner {
                // 5 steps with ν = 2: folds before steps 2 and 4, each a write-back sweep.
                let sweep = base.uploadBytesPerStep
                #expect(predicted.downloadBytesPerStep == sweep / 2 && predicted.uploadBytesPerStep == sweep + sweep / 2)
                #expect(offloader.statistics.bytesDownloaded == 2 * sweep)
                #expect(offloader.statistics.bytesUploaded == 5 * sweep + 2 * sweep)
            }
        }
    }
}
