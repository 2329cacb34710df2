import Foundation
import Testing
import ZOCPU
import ZOCore
import ZOFormats
import ZOModels
import ZOOffload
import ZOOptimizers
import ZOTasks
import ZOTraining

/// LoRA adapters trained by ZO over a frozen base: the adapter at rest computes what the merged
/// model computes (and what peft computes), a step's losses are the merged model's at A ± εz,
/// B ± εz, the update moves A and B alone, offloaded and stacked runs reproduce resident ones
/// bit for bit, and a saved adapter reads back as PEFT's format.
@Suite struct LoRATests {
    /// r 2, α 4 on q and v and one MLP weight of the fixture's family.
    static func options(_ fixture: String) -> LoRAOptions {
        LoRAOptions(rank: 2, alpha: 4, targets: ["q_proj", "v_proj", fixture.hasPrefix("opt/") ? "fc1" : "down_proj"], seed: 5)
    }

    static func values(_ model: any CausalLM) -> [[Float]] {
        model.groups.map { Array(UnsafeBufferPointer(start: $0.storage.floats, count: $0.layout.count)) }
    }

    /// The adapter at rest adds scale·B A: with PEFT's fixtures loaded, the loss is the merged
    /// model's and peft's own (scripts/fixtures/make_peft_fixtures.py), resident and offloaded.
    @Test(arguments: PEFTAdapterTests.names)
    func restingAdapterIsTheMergedModel(name: String) throws {
        let folder = Fixtures.root + "/peft/" + name
        let expected = try JSONDecoder().decode(PEFTAdapterTests.Expected.self,
                                                from: Data(contentsOf: URL(fileURLWithPath: folder + "/expected.json")))
        let adapter = try PEFTAdapter(directory: folder)
        for offloaded in [false, true] {
            let model = try ModelRegistry.load(path: Fixtures.root + "/" + expected.base)
            let backend = try CPUBackend(budget: 64 << 20, threads: 2)
            let options = LoRAOptions(adapter: adapter)
            let runner: any ModelRunner = offloaded
                ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 1), adapter: options)
                : try ResidentRunner(model: model, backend: backend, adapter: options)
            let state = try #require(runner.adapter as? LoRAState)
            #expect(Set(state.adaptedWeights) == Set(adapter.pairs.map(\.weightName)))
            try state.load(adapter)
            let loss = try runner.forward(try model.makeBatch(expected.ids)).meanLoss
            #expect(abs(loss - expected.loss_with_adapter) <= 1e-5 * expected.loss_with_adapter,
                    "\(name) offloaded \(offloaded): \(loss) vs peft \(expected.loss_with_adapter)")
        }
    }

    /// One step by hand: L+ is the merged model's loss at A + εz_A, B + εz_B (z the Gaussian
    /// streams of the factors' ids, numbered after the model's tensors in block order, A then
    /// B), the update is A, B ← a·(A, B) − lr·g·z (a = 1 − lr·wd), and the base does not move
    /// (nothing is left pending for it: the next step's streams stack).
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32", "llama/gemma3-f32"])
    func theStepIsZOOnTheFactors(fixture: String) throws {
        let eps: Float = 1e-2, lr: Float = 0.5, weightDecay: Float = 0.1
        let model = try OffloadTests.model(fixture, layers: 2)
        let base = Self.values(model)
        let backend = try CPUBackend(budget: 256 << 20, threads: 2)
        let runner = try ResidentRunner(model: model, backend: backend, adapter: Self.options(fixture))
        let mezo = MeZO(runner: runner, options: MeZOOptions(eps: eps, weightDecay: weightDecay, lora: Self.options(fixture)), seed: 3)
        let state = try #require(mezo.lora)
        let initial = try state.peftAdapter()
        #expect(initial.pairs.allSatisfy { pair in pair.b.allSatisfy { $0 == 0 } && pair.a.allSatisfy { abs($0) <= 1 / Float(pair.inputs).squareRoot() } })
        let step = try mezo.step(lr: lr, batch: try LowRankTests.batch(model))
        #expect(!mezo.hasPendingUpdate, "the model's pass stays the identity")
        try mezo.flush()
        try runner.copyParametersToHost()
        #expect(Self.values(model) == base, "the base is frozen")

        let seed = mezo.seed(step: 0, perturbation: 0)
        let firstID = UInt32(model.groups.reduce(0) { $0 + $1.layout.specs.count })
        /// The initial adapter times `decay`, moved by `scale` along the step's direction.
        func moved(_ scale: Float, decay: Float = 1) -> PEFTAdapter {
            let pairs = initial.pairs.enumerated().map { j, pair in
                let za = LowRankTests.stream(seed: seed, tensor: firstID + UInt32(2 * j), count: pair.a.count)
                let zb = LowRankTests.stream(seed: seed, tensor: firstID + UInt32(2 * j + 1), count: pair.b.count)
                return PEFTAdapter.Pair(weightName: pair.weightName, a: zip(pair.a, za).map { decay * $0 + scale * $1 },
                                        b: zip(pair.b, zb).map { decay * $0 + scale * $1 }, inputs: pair.inputs, outputs: pair.outputs)
            }
            return PEFTAdapter(rank: initial.rank, alpha: initial.alpha, rsLoRA: false, pairs: pairs)
        }
        let probe = try OffloadTests.model(fixture, layers: 2)
        try moved(eps).merge(into: probe)
        let plus = try ResidentRunner(model: probe, backend: backend).forward(try LowRankTests.batch(probe)).meanLoss
        #expect(abs(plus - step.lossPlus) <= 1e-5 * abs(plus), "L+ \(step.lossPlus), merged at A + εz, B + εz: \(plus)")
        #expect(step.lossPlus != step.lossMinus)

        let expected = moved(-lr * Float(step.projectedGradient), decay: 1 - lr * weightDecay), trained = try state.peftAdapter()
        for (pair, want) in zip(trained.pairs, expected.pairs) {
            for (actual, wanted) in [(pair.a, want.a), (pair.b, want.b)] {
                let worst = zip(actual, wanted).map { abs($0 - $1) }.max()!, size = wanted.map(abs).max()!
                #expect(worst <= 1e-6 * (1 + size), "\(pair.weightName): max |Δ| \(worst)")
            }
        }
        #expect(trained.pairs.contains { $0.b.contains { $0 != 0 } }, "B moved")
    }

    /// `steps` steps of `estimator`; the losses and the trained factors.
    static func train(_ fixture: String, plan: ResidencyPlan?, stacks: Bool = true, steps: Int = 4,
                      mezo options: MeZOOptions) throws -> (losses: [Double], adapter: PEFTAdapter, base: Bool) {
        let model = try OffloadTests.model(fixture, layers: 3)
        let base = Self.values(model)
        let backend = try CPUBackend(budget: 256 << 20, threads: 2)
        let runner: any ModelRunner
        if let plan {
            let offloader = try OffloadedRunner(model: model, backend: backend, plan: plan, adapter: options.lora)
            offloader.stacksStreams = stacks
            runner = offloader
        } else {
            let resident = try ResidentRunner(model: model, backend: backend, adapter: options.lora)
            resident.stacksStreams = stacks
            runner = resident
        }
        let mezo = MeZO(runner: runner, options: options, seed: 9)
        var losses: [Double] = []
        for _ in 0..<steps {
            let step = try mezo.step(lr: 0.05, batch: try LowRankTests.batch(model))
            losses += [step.lossPlus, step.lossMinus]
        }
        try mezo.flush()
        losses.append(try runner.forward(try LowRankTests.batch(model)).meanLoss)
        try runner.copyParametersToHost()
        return (losses, try mezo.lora!.peftAdapter(), Self.values(model) == base)
    }

    @Test(arguments: ["opt/opt-odd-heads-f16", "llama/llama-gqa-f32"])
    func offloadedAndStackedEqualResident(fixture: String) throws {
        for estimator in [MeZOOptions(eps: 1e-2, lora: Self.options(fixture)),
                          MeZOOptions(eps: 1e-2, weightDecay: 0.1, perturbation: .rademacher,
                                      population: .fzoo(queries: 3), lora: Self.options(fixture))] {
            let resident = try Self.train(fixture, plan: nil, mezo: estimator)
            let offloaded = try Self.train(fixture, plan: ResidencyPlan(slots: 1, format: .fp32), mezo: estimator)
            let unstacked = try Self.train(fixture, plan: nil, stacks: false, mezo: estimator)
            #expect(resident.base && offloaded.base && unstacked.base, "the base is frozen")
            #expect(resident.losses == offloaded.losses, "\(estimator.estimatorSummary)")
            #expect(resident.adapter.pairs.map(\.a) == offloaded.adapter.pairs.map(\.a))
            #expect(resident.adapter.pairs.map(\.b) == offloaded.adapter.pairs.map(\.b))
            // One pass per stream sums its GEMMs in other row blocks: equal within rounding.
            for (x, y) in zip(resident.losses, unstacked.losses) { #expect(abs(x - y) <= 1e-5 * abs(x)) }
        }
    }

    /// A saved adapter is PEFT's format: the names and shapes peft writes, the config keys it
    /// reads, and merged it gives the loss the adapter at rest gives.
    @Test func savedAdapterReadsBackAndMerges() throws {
        let trained = try Self.train("llama/llama-gqa-f32", plan: nil, mezo: MeZOOptions(eps: 1e-2, lora: Self.options("llama")))
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try trained.adapter.write(to: directory, baseModel: "llama/llama-gqa-f32")
        let read = try PEFTAdapter(directory: directory)
        #expect(read.rank == 2 && read.alpha == 4 && read.scale == 2 && Set(read.targetModules) == ["q_proj", "v_proj", "down_proj"])
        // The file lists the tensors by name.
        let written = trained.adapter.pairs.sorted { $0.weightName < $1.weightName }
        #expect(read.pairs.map(\.weightName) == written.map(\.weightName))
        #expect(read.pairs.map(\.a) == written.map(\.a) && read.pairs.map(\.b) == written.map(\.b))
        let names = try SafetensorsFile(path: directory + "/adapter_model.safetensors").tensorNames
        #expect(names.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"))
        #expect(names.contains("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"))
        let model = try OffloadTests.model("llama/llama-gqa-f32", layers: 3)
        try read.merge(into: model)
        let merged = try ResidentRunner(model: model, backend: try CPUBackend(budget: 64 << 20, threads: 2))
            .forward(try LowRankTests.batch(model)).meanLoss
        #expect(abs(merged - trained.losses.last!) <= 1e-5 * merged, "merged \(merged), at rest \(trained.losses.last!)")
    }

    @Test func targetsAndAdaptersThatDoNotFitAreNamed() throws {
        let model = try OffloadTests.model("llama/llama-gqa-f32", layers: 2)
        let backend = try CPUBackend(budget: 64 << 20, threads: 2)
        let wrong = LoRAOptions(rank: 2, alpha: 4, targets: ["query_key_value"])
        let message = try #require(throws: ModelError.self) { try ResidentRunner(model: model, backend: backend, adapter: wrong) }
        #expect(message.description.contains("the targets query_key_value name no linear"))
        #expect(message.description.contains("q_proj") && message.description.contains("down_proj"))
        // One target of several that names nothing (OPT's fc1 on a Llama) is named too.
        let partly = LoRAOptions(rank: 2, alpha: 4, targets: ["q_proj", "fc1"])
        let unmatched = try #require(throws: ModelError.self) { try ResidentRunner(model: model, backend: backend, adapter: partly) }
        #expect(unmatched.description.contains("the targets fc1 name no linear"), "\(unmatched)")
        #expect(backend.arena.stats.inUse == 0, "what the refused adapters took went back")
        // An adapter of another rank, or one adapting weights the run leaves out.
        let adapter = try PEFTAdapter(directory: Fixtures.root + "/peft/llama-gqa-f32-qv")
        let runner = try ResidentRunner(model: try ModelRegistry.load(path: Fixtures.llama("llama-gqa-f32")), backend: backend,
                                        adapter: LoRAOptions(rank: adapter.rank, alpha: adapter.alpha, targets: ["q_proj"]))
        let extra = try #require(throws: ModelError.self) { try (runner.adapter as! LoRAState).load(adapter) }
        #expect(extra.description.contains("v_proj.weight, which the run's targets (q_proj) leave out"))
    }
}

/// LoRA in hybrid runs: the tail's blocks keep their factors trained first-order (the model
/// frozen everywhere), their gradients those of the loss, offloaded runs equal resident ones.
extension LoRATests {
    static let allLinear = LoRAOptions(rank: 2, alpha: 4, targets: ["all-linear"], seed: 5)

    /// The directional derivative of the loss along a random direction over the tail's factors
    /// (B away from zero, so that A has a gradient too) equals the central difference.
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32", "llama/gemma2-f32"])
    func firstOrderFactorGradientsMatchCentralDifferences(fixture: String) throws {
        let model = try ModelRegistry.load(path: Fixtures.root + "/" + fixture)
        let backend = try CPUBackend(budget: 64 << 20, threads: 1)
        let tail = try FirstOrderTail(model: model, backend: backend, firstBlock: model.blocks.count - 1)
        let runner = try ResidentRunner(model: model, backend: backend, tail: tail, adapter: Self.allLinear)
        let lora = try #require(runner.adapter as? LoRAState)
        var generator = SplitMix64(seed: 11)
        func uniform(_ count: Int) -> [Float] { (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 } }
        let start = try lora.peftAdapter()
        try lora.load(PEFTAdapter(rank: start.rank, alpha: start.alpha, rsLoRA: false, pairs: start.pairs.map {
            PEFTAdapter.Pair(weightName: $0.weightName, a: $0.a, b: uniform($0.b.count).map { $0 * 0.05 }, inputs: $0.inputs,
                             outputs: $0.outputs)
        }))
        let task = LMTrainingTask(train: [[5, 9, 3, 17, 2, 11], [8, 4, 6], [1, 2, 3, 4, 5, 6, 7, 8]], heldOut: nil)
        let plan = try task.lossPlan(Array(0..<task.trainingCount), model: model)
        tail.isRecording = true
        try tail.backward(plan.gradient!(try runner.forward(plan.requests)))
        tail.isRecording = false

        let tensors = tail.trainedTensors, last = model.blocks.count - 1
        let adaptedInTail = lora.adaptedWeights.filter { $0.contains("layers.\(last).") }
        #expect(tensors.map(\.name) == adaptedInTail.flatMap { name in
            let stem = String(name.dropLast(".weight".count))
            return [stem + ".lora_A.weight", stem + ".lora_B.weight"]
        }, "the tail trains its blocks' factors and nothing else")
        var derivative = 0.0
        var directions: [(TrainedTensor, [Float], [Float])] = []
        for tensor in tensors {
            let count = tensor.values.byteCount / 4, direction = uniform(count)
            let gradient = try backend.read(tensor.gradient, count: count, as: Float.self)
            derivative += zip(gradient, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            directions.append((tensor, try backend.read(tensor.values, count: count, as: Float.self), direction))
        }
        func loss(at step: Float) throws -> Double {
            for (tensor, values, direction) in directions {
                let moved = try backend.upload(zip(values, direction).map { $0 + step * $1 }, label: "moved")
                backend.copyRows(source: moved, sourceStride: 0, destination: tensor.values, destinationStride: 0, rows: 1, width: values.count)
                backend.free(moved)
            }
            tail.parametersChanged()
            try backend.synchronize(backend.computeStream)
            return plan.reduce(try runner.forward(plan.requests))
        }
        // h small against the factors (|A| ≤ 1/√in, |B| ≤ 0.05), large against fp32 rounding of the loss.
        let h: Float = 2e-3
        let difference = (try loss(at: h) - (try loss(at: -h))) / Double(2 * h)
        #expect(abs(derivative) > 1e-2, "a gradient to check")
        // 1%: an fp32 loss differenced over ±h, and OPT's ReLU kinks crossed along the way.
        #expect(abs(difference - derivative) <= 1e-2 * max(abs(derivative), 1e-2),
                "\(fixture): central difference \(difference), gradient · direction \(derivative)")
    }

    /// `steps` hybrid steps (the deepest block's factors by AdamW, the others' by MeZO or
    /// frozen); the adapter, the step losses and whether the model stayed as it was.
    static func hybrid(_ fixture: String, offloaded: Bool, zeroOrder: Bool) throws -> (adapter: PEFTAdapter, losses: [Double], frozen: Bool) {
        let model = try OffloadTests.model(fixture, layers: 3)
        let base = Self.values(model)
        let backend = try CPUBackend(budget: 64 << 20, threads: 2)
        let tail = try FirstOrderTail(model: model, backend: backend, firstBlock: 2)
        let runner: any ModelRunner = offloaded
            ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 1, firstOrderBlocks: 1), tail: tail,
                                  adapter: Self.allLinear)
            : try ResidentRunner(model: model, backend: backend, tail: tail, adapter: Self.allLinear)
        let rule = FirstOrderRule.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
        let settings = FirstOrderOptions(blocks: 1, embedding: false, zeroOrder: zeroOrder, rule: rule, learningRate: 1e-2,
                                         statePlacement: .device)
        let options = TrainingOptions(steps: 4, batchSize: 2, schedule: LearningRateSchedule(base: 0.05, totalSteps: 4),
                                      mezo: MeZOOptions(eps: 1e-2, lora: Self.allLinear), seed: 3, firstOrder: settings)
        let task = LMTrainingTask(train: [[5, 9, 3, 17, 2, 11], [8, 4, 6], [1, 2, 3, 4, 5, 6, 7, 8], [9, 9, 2, 4]], heldOut: nil)
        let trainer = Trainer(runner: runner, task: task, options: options,
                              firstOrder: try FirstOrderOptimizer(tail: tail, rule: rule, placement: .device))
        var losses: [Double] = []
        _ = try trainer.run { event in
            if case .step(let step, _, _, _) = event { losses.append((step.lossPlus + step.lossMinus) / 2) }
        }
        try runner.copyParametersToHost()
        return (try (runner.adapter as! LoRAState).peftAdapter(), losses, Self.values(model) == base)
    }

    @Test(arguments: ["opt/opt-odd-heads-f16", "llama/llama-gqa-f32"])
    func hybridRunsTrainTheTailsFactorsFirstOrder(fixture: String) throws {
        for zeroOrder in [true, false] {
            let resident = try Self.hybrid(fixture, offloaded: false, zeroOrder: zeroOrder)
            let offloaded = try Self.hybrid(fixture, offloaded: true, zeroOrder: zeroOrder)
            #expect(resident.frozen && offloaded.frozen, "the model is frozen")
            #expect(resident.losses == offloaded.losses, "\(fixture) zeroOrder \(zeroOrder)")
            #expect(resident.adapter.pairs.map(\.b) == offloaded.adapter.pairs.map(\.b))
            #expect(resident.adapter.pairs.map(\.a) == offloaded.adapter.pairs.map(\.a))
            func moved(_ block: Int) -> Bool {
                resident.adapter.pairs.contains { $0.weightName.contains("layers.\(block).") && $0.b.contains { $0 != 0 } }
            }
            #expect(moved(2), "the tail's factors train first-order")
            #expect(moved(0) == zeroOrder && moved(1) == zeroOrder, "the others train exactly when ZO is on")
        }
    }
}
