import Foundation
import Testing
import ZOCPU
import ZOCore
import ZOModels
import ZOOffload
import ZOOptimizers
import ZOTasks
import ZOTraining

/// First-order and hybrid ZO/FO training: each task's loss gradient (checked by central
/// differences along a random direction), hybrid steps resident against offloaded, and the
/// first-order part actually lowering the loss.
@Suite struct HybridTrainingTests {
    struct NoText: TextCodec {
        func encodePrompt(_ text: String) throws -> [Int] { [] }
        func encodeContinuation(_ text: String) throws -> [Int] { [] }
        func decodeText(_ ids: [Int]) -> String { "" }
        var endTokens: Set<Int> { [] }
    }

    static func tasks() -> [(String, any TrainingTask)] {
        let lm = LMTrainingTask(train: [[5, 9, 3, 17, 2, 11], [8, 4, 6], [1, 2, 3, 4, 5, 6, 7, 8]], heldOut: nil)
        let single = ChoiceTrainingTask(train: [ChoiceExample(prompt: [5, 9, 3], candidates: [[7], [12]], label: 1),
                                                ChoiceExample(prompt: [4, 8, 2, 6, 1], candidates: [[7], [12]], label: 0)], heldOut: [])
        let multi = ChoiceTrainingTask(train: [ChoiceExample(prompt: [5, 9, 3], candidates: [[7, 3], [12]], label: 0),
                                               ChoiceExample(prompt: [4, 8], candidates: [[7], [12, 5, 9]], label: 1)], heldOut: [])
        let qa = QATrainingTask(train: [QAExample(prompt: [3, 4, 5], target: [6, 7], answers: ["x"]),
                                        QAExample(prompt: [9, 2], target: [8, 1, 5], answers: ["y"])], heldOut: [], codec: NoText())
        return [("lm", lm), ("choice, one token", single), ("choice, several tokens", multi), ("qa", qa)]
    }

    /// The directional derivative of each task's loss along a random direction over the tail's
    /// last block and head equals the central difference of the loss. (The tied token table is
    /// left out: its first-order gradient is the head's part only, the embedding lookup being
    /// on the detached side.)
    @Test(arguments: ["opt/opt-tiny-f32", "llama/llama-gqa-f32", "llama/qwen2-window-f32", "llama/gemma2-f32"])
    func taskLossGradientsMatchCentralDifferences(fixture: String) throws {
        for (label, task) in Self.tasks() {
            let model = try ModelRegistry.load(path: Fixtures.root + "/" + fixture)
            let backend = try CPUBackend(budget: 64 << 20, threads: 1)
            let tail = try FirstOrderTail(model: model, backend: backend, firstBlock: model.blocks.count - 1)
            let runner = try ResidentRunner(model: model, backend: backend, tail: tail)
            let plan = try task.lossPlan(Array(0..<task.trainingCount), model: model)
            tail.isRecording = true
            try tail.backward(plan.gradient!(try runner.forward(plan.requests)))
            tail.isRecording = false

            var generator = SplitMix64(seed: 7)
            var derivative = 0.0
            var directions: [(TrainedTensor, [Float], [Float])] = []
            let embeddingNames = Set(model.embedding.layout.specs.map(\.name))
            for tensor in tail.trainedTensors where !embeddingNames.contains(tensor.name) {
                let count = tensor.values.byteCount / 4
                let direction = (0..<count).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 }
                let gradient = try backend.read(tensor.gradient, count: count, as: Float.self)
                derivative += zip(gradient, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                directions.append((tensor, try backend.read(tensor.values, count: count, as: Float.self), direction))
            }
            func loss(at step: Float) throws -> Double {
                for (tensor, values, direction) in directions {
                    let moved = zip(values, direction).map { $0 + step * $1 }
                    let host = try HostBuffer(byteCount: moved.count * 4)
                    moved.withUnsafeBytes { host.baseAddress.copyMemory(from: $0.baseAddress!, byteCount: moved.count * 4) }
                    backend.upload(host, hostOffset: 0, to: tensor.values, byteCount: moved.count * 4, on: backend.computeStream)
                }
                try backend.synchronize(backend.computeStream)
                return plan.reduce(try runner.forward(plan.requests))
            }
            let h: Float = 1e-3
            let difference = (try loss(at: h) - (try loss(at: -h))) / Double(2 * h)
            // 1%: an fp32 loss differenced over ±h, and OPT's ReLU kinks crossed along the way.
            #expect(abs(difference - derivative) <= 1e-2 * max(abs(derivative), 1e-2),
                    "\(fixture) \(label): central difference \(difference), gradient · direction \(derivative)")
        }
    }
}

extension HybridTrainingTests {
    /// Trains `steps` steps with the deepest `k` blocks first-order and returns the final
    /// parameters of every group and the step losses.
    static func train(fixture: String, k: Int, zeroOrder: Bool, offloaded: Bool, placement: OptimizerStatePlacement = .device,
                      rule: FirstOrderRule = .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01),
                      steps: Int = 4, lowRank: LowRankOptions? = nil) throws -> (parameters: [[Float]], losses: [Double]) {
        let model = try ModelRegistry.load(path: Fixtures.root + "/" + fixture)
        let backend = try CPUBackend(budget: 64 << 20, threads: 2)
        let embedding = k == model.blocks.count && !zeroOrder
        let tail = try FirstOrderTail(model: model, backend: backend, firstBlock: model.blocks.count - k, trainsEmbedding: embedding)
        let runner: any ModelRunner = offloaded
            ? try OffloadedRunner(model: model, backend: backend, plan: ResidencyPlan(slots: 1, firstOrderBlocks: k), tail: tail, adapter: lowRank)
            : try ResidentRunner(model: model, backend: backend, tail: tail, adapter: lowRank)
        let settings = FirstOrderOptions(blocks: k, embedding: embedding, zeroOrder: zeroOrder, rule: rule, learningRate: 1e-2,
                                         statePlacement: placement)
        let options = TrainingOptions(steps: steps, batchSize: 2, schedule: LearningRateSchedule(base: 1e-3, totalSteps: steps),
                                      mezo: MeZOOptions(eps: 1e-3, lowRank: lowRank), seed: 3, firstOrder: settings)
        let task = LMTrainingTask(train: [[5, 9, 3, 17, 2, 11], [8, 4, 6], [1, 2, 3, 4, 5, 6, 7, 8], [9, 9, 2, 4]], heldOut: nil)
        let trainer = Trainer(runner: runner, task: task, options: options,
                              firstOrder: try FirstOrderOptimizer(tail: tail, rule: rule, placement: placement))
        var losses: [Double] = []
        _ = try trainer.run { event in
            if case .step(let step, _, _, _) = event { losses.append((step.lossPlus + step.lossMinus) / 2) }
        }
        try runner.copyParametersToHost()
        return (model.groups.map { group in Array(UnsafeBufferPointer(start: group.storage.floats, count: group.layout.count)) }, losses)
    }

    /// Offloaded hybrid training (ZO blocks streamed through one slot, the tail resident)
    /// reproduces resident hybrid training bit for bit, with and without the ZO part, and
    /// with the low-rank estimator for the ZO part.
    @Test(arguments: ["opt/opt-odd-heads-f16", "llama/llama-gqa-f32", "llama/gemma2-f32"])
    func offloadedHybridEqualsResident(fixture: String) throws {
        let before = try Self.train(fixture: fixture, k: 1, zeroOrder: true, offloaded: false, steps: 0).parameters
        for zeroOrder in [true, false] {
            let resident = try Self.train(fixture: fixture, k: 1, zeroOrder: zeroOrder, offloaded: false)
            let offloaded = try Self.train(fixture: fixture, k: 1, zeroOrder: zeroOrder, offloaded: true)
            #expect(resident.losses == offloaded.losses, "\(fixture) zeroOrder \(zeroOrder)")
            #expect(resident.parameters == offloaded.parameters, "\(fixture) zeroOrder \(zeroOrder)")
            #expect((resident.parameters[1] != before[1]) == zeroOrder, "block 0 moves exactly when ZO is on")
            #expect(resident.parameters.last! != before.last!, "the head trains first-order")
        }
        let lowRank = LowRankOptions(rank: 2, resampleEvery: 2)
        let resident = try Self.train(fixture: fixture, k: 1, zeroOrder: true, offloaded: false, steps: 5, lowRank: lowRank)
        let offloaded = try Self.train(fixture: fixture, k: 1, zeroOrder: true, offloaded: true, steps: 5, lowRank: lowRank)
        #expect(resident.losses == offloaded.losses && resident.parameters == offloaded.parameters, "\(fixture) low-rank")
        #expect(resident.parameters[1] != before[1], "block 0 moves by the low-rank estimator")
    }

    /// Optimizer state on the host gives the device-state run's weights (the same update
    /// arithmetic), for AdamW and SGD with momentum.
    /// Device memory running out part-way through the optimizer's state or the low-rank
    /// estimator's factors is an error, not a crash (it was a double free), and what was taken
    /// goes back to the arena.
    @Test func runningOutOfDeviceMemoryPartWayThrowsAndGivesBackWhatWasTaken() throws {
        let model = try ModelRegistry.load(path: Fixtures.root + "/opt/opt-tiny-f32")
        let rule = FirstOrderRule.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0)
        let roomy = try CPUBackend(budget: 64 << 20, threads: 2)
        let tail = try FirstOrderTail(model: model, backend: roomy, firstBlock: model.blocks.count - 1)
        let tailBytes = roomy.arena.stats.inUse
        let optimizer = try FirstOrderOptimizer(tail: tail, rule: rule, placement: .device)
        let lowRank = try LowRankState(model: model, blockCount: model.blocks.count, linears: model.blockLinears,
                                       options: LowRankOptions(rank: 2, resampleEvery: 5), backend: roomy)
        let stateBytes = optimizer.deviceStateBytes, factorBytes = roomy.arena.stats.inUse - tailBytes - stateBytes
        #expect(stateBytes > 0 && factorBytes > 0 && lowRank.adaptedTensorIDs.count > 0)

        let tight = try CPUBackend(budget: tailBytes + stateBytes / 2, threads: 2)
        let tightTail = try FirstOrderTail(model: model, backend: tight, firstBlock: model.blocks.count - 1)
        #expect(throws: BackendError.self) { _ = try FirstOrderOptimizer(tail: tightTail, rule: rule, placement: .device) }
        #expect(tight.arena.stats.inUse == tailBytes)

        let small = try CPUBackend(budget: factorBytes / 2, threads: 2)
        #expect(throws: BackendError.self) {
            _ = try LowRankState(model: model, blockCount: model.blocks.count, linears: model.blockLinears,
                                 options: LowRankOptions(rank: 2, resampleEvery: 5), backend: small)
        }
        #expect(small.arena.stats.inUse == 0)
    }

    @Test func hostStateEqualsDeviceState() throws {
        for rule in [FirstOrderRule.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01), .sgd(momentum: 0.9, weightDecay: 0.01)] {
            let device = try Self.train(fixture: "llama/llama-untied-bf16", k: 2, zeroOrder: true, offloaded: false, placement: .device, rule: rule)
            let host = try Self.train(fixture: "llama/llama-untied-bf16", k: 2, zeroOrder: true, offloaded: false, placement: .host, rule: rule)
            #expect(device.parameters == host.parameters, "\(rule)")
        }
    }

    /// The first-order part learns: full first-order training and first-order on the last
    /// block alone lower the training loss over 8 steps; the frozen blocks of the ZO-off run
    /// do not change.
    @Test func firstOrderTrainingLowersTheLoss() throws {
        let before = try Self.train(fixture: "opt/opt-tiny-f32", k: 1, zeroOrder: false, offloaded: false, steps: 0).parameters
        let full = try Self.train(fixture: "opt/opt-tiny-f32", k: 2, zeroOrder: false, offloaded: false, steps: 8)
        let last = try Self.train(fixture: "opt/opt-tiny-f32", k: 1, zeroOrder: false, offloaded: false, steps: 8)
        for run in [full, last] { #expect(run.losses.last! < run.losses.first! - 0.1, "losses \(run.losses)") }
        #expect(last.parameters[1] == before[1], "block 0 is frozen when ZO is off")
        #expect(full.parameters[1] != before[1] && full.parameters[0] != before[0], "full first-order trains block 0 and the embedding")
    }
}
