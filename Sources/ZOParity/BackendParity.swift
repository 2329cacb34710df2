import ZOCore
import ZOCPU
import ZOCUDA
import ZOModels
import ZOOffload
import ZOOptimizers
import ZOTasks
import ZOTraining

/// A backend against the CPU oracle: noise (CUDA), perturbation with snapshots and the link
/// codecs bit for bit; for each registered model family (a small random model of its
/// `ModelFamily.parityConfig`: OPT; Llama with grouped KV heads, RMSNorm, rotary embeddings,
/// SwiGLU and a tied head; Mistral, Qwen2/3, Phi-3; Gemma 2/3 with GeGLU, sandwich norms, soft
/// caps and two rotary bases) logits and 20 ZO steps,
/// resident and offloaded (MeZO, and a population offloaded, full and low-rank-only stacked),
/// 6 hybrid steps (the last block and the head first-order, by AdamW) and 6 first-order steps
/// of the whole model (fewer of each with `steps`), within a tolerance; optionally a few steps of a real model. Each check passes with what it measured
/// or fails saying what differed. `zotune selftest` runs them from the binary (a GPU machine
/// has no Swift to run the tests), the test suite on the GPU or the CUDA stand-in.
public enum BackendParity {
    /// A check's result: what it measured, or what differed.
    public enum Outcome: Sendable, Equatable {
        case passed(String)
        case failed(String)

        /// What differed (nil when the check passed).
        public var problem: String? {
            if case .failed(let problem) = self { problem } else { nil }
        }

        /// A relative difference against its bound.
        static func within(_ difference: Double, _ tolerance: Double, _ what: String) -> Outcome {
            let text = "\(what) \(TextFormat.scientific(difference))"
            return difference <= tolerance ? .passed(text) : .failed(text)
        }

        /// Identical results, or the first difference.
        static func identical(_ difference: String?) -> Outcome { difference.map { .failed($0) } ?? .passed("identical") }
    }

    /// An architecture the checks cover: every family in the registry.
    public struct Family: Sendable {
        public let family: any ModelFamily.Type

        /// The family's name.
        public var rawValue: String { family.name }

        public static var allCases: [Family] { ModelRegistry.families.map(Family.init) }
    }

    /// Every check for `backend`, by name, with its outcome (thrown errors are outcomes too);
    /// `steps` caps the training checks' steps (20 ZO, 6 first-order by default).
    public static func run(_ backend: any Backend, against oracle: CPUBackend, tolerance: Double,
                           steps: Int = 20) -> [(name: String, outcome: Outcome)] {
        let zoSteps = min(20, steps), firstOrderSteps = min(6, steps)
        var checks: [(String, () throws -> Outcome)] = []
        if let gpu = backend as? CUDABackend {
            for kind in [PerturbationKind.gaussian, .rademacher] {
                checks.append(("noise (\(kind.rawValue)) bit for bit", { .identical(try noise(gpu, kind: kind)) }))
            }
        }
        checks.append(("perturbation and snapshot bit for bit", { .identical(try perturbation(backend, oracle)) }))
        for format in [LinkFormat.bf16, .fp16, .fp8] {
            checks.append(("\(format.rawValue) encoding bit for bit", { .identical(try codec(format, backend, oracle)) }))
        }
        let plans: [(String, ResidencyPlan?)] = [("resident", nil), ("offloaded", ResidencyPlan(slots: 2)),
                                                 ("offloaded, bf16 decoded by tensor", ResidencyPlan(slots: 2, format: .bf16, decodeByTensor: true))]
        for family in Family.allCases {
            checks.append(("\(family.rawValue) logits within \(tolerance)", { try logits(family, backend, oracle, tolerance: tolerance) }))
            for (name, plan) in plans {
                checks.append(("\(family.rawValue): \(zoSteps) ZO steps \(name) within \(tolerance)", {
                    try training(backend, oracle, plan: plan, tolerance: tolerance, steps: zoSteps) { try model(family) }
                }))
            }
            let population = MeZOOptions(eps: 1e-3, perturbation: .rademacher, population: .fzoo(queries: 4))
            checks.append(("\(family.rawValue): \(zoSteps) population ZO steps (N 4) offloaded within \(tolerance)", {
                try training(backend, oracle, plan: ResidencyPlan(slots: 2), options: population, tolerance: tolerance, steps: zoSteps) {
                    try model(family)
                }
            }))
            let stacked = MeZOOptions(eps: 1e-3, lowRank: LowRankOptions(rank: 2, resampleEvery: 4, lowRankOnly: true),
                                      population: .fzoo(queries: 4))
            checks.append(("\(family.rawValue): \(zoSteps) low-rank-only population ZO steps (N 4, stacked) offloaded within \(tolerance)", {
                try training(backend, oracle, plan: ResidencyPlan(slots: 2), options: stacked, tolerance: tolerance, steps: zoSteps) {
                    try model(family)
                }
            }))
            for offloaded in [false, true] {
                let placement = offloaded ? "offloaded" : "resident"
                checks.append(("\(family.rawValue): \(firstOrderSteps) hybrid ZO/FO steps \(placement) within \(tolerance)", {
                    try hybrid(family, backend, oracle, offloaded: offloaded, steps: firstOrderSteps, tolerance: tolerance)
                }))
            }
            checks.append(("\(family.rawValue): \(firstOrderSteps) first-order steps of every block and the embedding within \(tolerance)", {
                try hybrid(family, backend, oracle, offloaded: false, firstOrderOnly: true, steps: firstOrderSteps, tolerance: tolerance)
            }))
        }
        return checks.map { name, body in
            do { return (name, try body()) } catch { return (name, .failed("\(error)")) }
        }
    }

    /// A 3-block model of `family` (its `parityConfig`) with seeded random weights (fresh each
    /// call) and its batch of three sequences of different lengths.
    public static func model(_ family: Family) throws -> (any CausalLM, TokenBatch) {
        let model = try family.family.parityConfig.makeModel(blockStorage: .memory)
        model.initializeRandomly(seed: 8, std: 0.1)
        return (model, try model.makeBatch(sequences))
    }

    /// Three sequences of 12, 17 and 22 seeded random ids below 512.
    static var sequences: [[Int]] {
        var generator = SplitMix64(seed: 2)
        return (0..<3).map { b in (0..<(12 + 5 * b)).map { _ in Int(generator.next() % 512) } }
    }

    /// `steps` of hybrid training of `family`'s model: MeZO on the first blocks, AdamW on the last block and
    /// the head from the two passes' gradients (batches of 2 of `sequences`), on `backend`
    /// (resident or offloaded) and resident on the CPU; the step losses within `tolerance`.
    /// With `firstOrderOnly`, AdamW trains every block, the head and the embedding, no ZO.
    public static func hybrid(_ family: Family, _ backend: any Backend, _ oracle: CPUBackend, offloaded: Bool,
                              firstOrderOnly: Bool = false, steps: Int = 6, tolerance: Double) throws -> Outcome {
        var runs: [[Double]] = []
        for target in [backend, oracle] as [any Backend] {
            let (model, _) = try model(family)
            let k = firstOrderOnly ? model.blocks.count : 1
            let tail = try FirstOrderTail(model: model, backend: target, firstBlock: model.blocks.count - k, trainsEmbedding: firstOrderOnly)
            let runner: any ModelRunner = offloaded && target === backend
                ? try OffloadedRunner(model: model, backend: target, plan: ResidencyPlan(slots: 1, firstOrderBlocks: k), tail: tail)
                : try ResidentRunner(model: model, backend: target, tail: tail)
            let rule = FirstOrderRule.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
            let settings = FirstOrderOptions(blocks: k, embedding: firstOrderOnly, zeroOrder: !firstOrderOnly, rule: rule,
                                             learningRate: 1e-2, statePlacement: .device)
            let options = TrainingOptions(steps: steps, batchSize: 2, schedule: LearningRateSchedule(base: 1e-3, totalSteps: steps),
                                          mezo: MeZOOptions(eps: 1e-3), seed: 3, firstOrder: settings)
            let trainer = Trainer(runner: runner, task: LMTrainingTask(train: sequences, heldOut: nil), options: options,
                                  firstOrder: try FirstOrderOptimizer(tail: tail, rule: rule, placement: .device))
            var losses: [Double] = []
            _ = try trainer.run { event in
                if case .step(let step, _, _, _) = event { losses.append((step.lossPlus + step.lossMinus) / 2) }
            }
            runs.append(losses)
        }
        return .within(worst(runs[0], runs[1]), tolerance, "largest relative loss difference")
    }

    public static func noise(_ gpu: CUDABackend, kind: PerturbationKind) throws -> String? {
        let count = 10_000
        let out = try gpu.allocate(count * 4, label: "noise")
        defer { gpu.free(out) }
        for (seed, tensor) in [(UInt64(0), UInt32(0)), (0xDEAD_BEEF_1234, 7), (.max, 123)] {
            gpu.fillNoise(out, count: count, kind: kind, seed: seed, tensor: tensor)
            var expected = [Float](repeating: 0, count: (count + 31) / 32 * 32)
            expected.withUnsafeMutableBufferPointer { buffer in
                for chunk in 0..<(count + 31) / 32 { Noise.chunk(kind, seed: seed, tensor: tensor, chunk: chunk, into: buffer.baseAddress! + chunk * 32) }
            }
            let bits = try gpu.read(out, count: count, as: UInt32.self)
            if let first = (0..<count).first(where: { bits[$0] != expected[$0].bitPattern }) {
                return "seed \(seed) tensor \(tensor): element \(first) is \(Float(bitPattern: bits[first])), the CPU's \(expected[first])"
            }
        }
        return nil
    }

    /// A perturbation pass of `termCount` terms (kind `kind`) over two tensors, one that decays,
    /// with a snapshot after `afterTerms` of them: parameters and snapshot bit for bit.
    public static func perturbation(_ backend: any Backend, _ oracle: CPUBackend, termCount: Int = 2, afterTerms: Int = 1,
                                    kind: PerturbationKind = .gaussian) throws -> String? {
        let count = 4099
        let values = (0..<count).map { Float($0 % 97) * 0.01 - 0.4 }
        let tensors = [PerturbedTensor(offset: 0, count: 1000, id: 3, decays: true), PerturbedTensor(offset: 1000, count: 3099, id: 4, decays: false)]
        let terms = (0..<termCount).map { k in
            PerturbationTerm(seed: UInt64(11 + k), coefficient: 1e-3 * Float(k % 5 - 2) + 5e-4, decayCoefficient: 2e-3)
        }
        var results: [[UInt32]] = []
        for target in [backend, oracle] as [any Backend] {
            let buffer = try target.upload(values, label: "parameters")
            defer { target.free(buffer) }
            let snapshot = try HostBuffer(byteCount: count * 4)
            target.perturb(buffer, tensors: tensors, terms: terms, decayFactor: 0.999, kind: kind,
                           snapshot: PerturbationSnapshot(host: snapshot, afterTerms: afterTerms))
            results.append(try target.read(buffer, count: count, as: UInt32.self)
                           + Array(UnsafeBufferPointer(start: snapshot.baseAddress.assumingMemoryBound(to: UInt32.self), count: count)))
        }
        guard let first = results[0].indices.first(where: { results[0][$0] != results[1][$0] }) else { return nil }
        return "\(first < count ? "parameter" : "snapshot") element \(first % count) differs"
    }

    public static func codec(_ format: LinkFormat, _ backend: any Backend, _ oracle: CPUBackend) throws -> String? {
        var generator = SplitMix64(seed: 5)
        let values: [Float] = (0..<1000).map { i in
            let unit = Float(generator.next() >> 40) / Float(1 << 24) - 0.5
            return i % 7 == 0 ? unit * 1e-6 : unit * 0.6
        }
        var encoded: [[UInt8]] = []
        for target in [backend, oracle] as [any Backend] {
            let input = try target.upload(values, label: "values")
            let out = try target.allocate(format.encodedBytes(values.count), label: "encoded")
            defer { target.free(input); target.free(out) }
            target.encode(input, count: values.count, format: format, stochasticSeed: 99, out: out)
            encoded.append(try target.read(out, count: format.encodedBytes(values.count), as: UInt8.self))
        }
        guard let first = encoded[0].indices.first(where: { encoded[0][$0] != encoded[1][$0] }) else { return nil }
        return "byte \(first) differs"
    }

    /// The largest relative difference of `a` from `b`; infinity when a value is not finite
    /// (a NaN would otherwise compare as no difference) or the counts differ.
    public static func worst(_ a: [Double], _ b: [Double]) -> Double {
        guard a.count == b.count, (a + b).allSatisfy(\.isFinite) else { return .infinity }
        return zip(a, b).map { abs($0 - $1) / max(abs($1), 1e-6) }.max() ?? 0
    }

    public static func logits(_ family: Family, _ backend: any Backend, _ oracle: CPUBackend, tolerance: Double) throws -> Outcome {
        let (model, batch) = try model(family)
        var outputs: [[Double]] = []
        for target in [backend, oracle] as [any Backend] {
            outputs.append(try ResidentRunner(model: model, backend: target).forward(batch, outputs: .logits).logits!.map(Double.init))
        }
        let largest = outputs[1].map(abs).max() ?? 1
        let finite = (outputs[0] + outputs[1]).allSatisfy(\.isFinite)
        let difference = finite ? zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? 0 : .infinity
        return .within(difference / largest, tolerance, "largest |Δlogit| / largest |logit|")
    }

    /// `steps` ZO steps (MeZO, or what `options` say) on `backend`, resident or offloaded by `plan`, against the CPU:
    /// resident (which fp32 offloading reproduces bit for bit there), or the same low-bit plan.
    /// `load` gives a fresh copy of the model and its batch for each side.
    public static func training(_ backend: any Backend, _ oracle: CPUBackend, plan: ResidencyPlan?,
                                options: MeZOOptions = MeZOOptions(eps: 1e-3), tolerance: Double, steps: Int,
                                learningRate: Float = 1e-3, load: () throws -> (any CausalLM, TokenBatch)) throws -> Outcome {
        var runs: [[Double]] = []
        for target in [backend, oracle] as [any Backend] {
            let (model, batch) = try load()
            let offloaded = plan.flatMap { target === backend || $0.format != .fp32 ? $0 : nil }
            let runner: any ModelRunner = try offloaded.map { try OffloadedRunner(model: model, backend: target, plan: $0, adapter: options.lowRank) }
                ?? ResidentRunner(model: model, backend: target, adapter: options.lowRank)
            let mezo = MeZO(runner: runner, options: options, seed: 4)
            runs.append(try (0..<steps).map { _ in try mezo.step(lr: learningRate, batch: batch).lossPlus })
        }
        return .within(worst(runs[0], runs[1]), tolerance, "largest relative loss difference")
    }

    /// A batch of two sequences (24 and 32 tokens) of seeded random ids below `model`'s vocabulary.
    public static func randomBatch(for model: any CausalLM) throws -> TokenBatch {
        var generator = SplitMix64(seed: 3)
        return try model.makeBatch([24, 32].map { length in (0..<length).map { _ in Int(generator.next() % UInt64(model.vocabSize)) } })
    }
}
