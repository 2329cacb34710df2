import ZOCore
import ZOModels

/// Hyperparameters of ZO-SGD.
public struct MeZOOptions: Sendable, Equatable, Codable {
    /// ε: the perturbation scale.
    public var eps: Float = 1e-3
    /// Weight decay (skipped for biases and norms).
    public var weightDecay: Float = 0
    /// Perturbations per step; their estimates are averaged.
    public var q: Int = 1
    public var perturbation: PerturbationKind = .gaussian

    public init(eps: Float = 1e-3, weightDecay: Float = 0, q: Int = 1, perturbation: PerturbationKind = .gaussian) {
        self.eps = eps
        self.weightDecay = weightDecay
        self.q = q
        self.perturbation = perturbation
    }
}

/// What one ZO step measured.
public struct MeZOStep: Sendable, Equatable {
    public let step: Int
    /// Losses at θ + εz and θ − εz (one pair per perturbation; averaged when q > 1).
    public let lossPlus: Double
    public let lossMinus: Double
    /// (L+ − L−) / 2ε, averaged over the q perturbations.
    public let projectedGradient: Double
    public let learningRate: Float
    /// The seeds of this step's perturbations (with `projectedGradients`, the whole update).
    public let seeds: [UInt64]
    public let projectedGradients: [Double]
    /// Whether a non-finite loss made the step skip its update.
    public let skipped: Bool
}

/// ZO-SGD as in MeZO's Algorithm 1 (Malladi et al., 2023), over every parameter group of a
/// resident model, with z regenerated from seeds and the passes fused: the restore and the
/// update of step t go into the same pass as the +ε perturbation of step t+1, so a step makes
/// two passes over the parameters. The update of the last step stays pending until `flush()`,
/// which must run before evaluating or saving.
public final class MeZO {
    public let runner: ResidentRunner
    public let options: MeZOOptions
    /// The run's seed; step t's perturbation j uses `seed(step: t, perturbation: j)`.
    public let runSeed: UInt64
    private let tensors: [[PerturbedTensor]]
    private var pending: (terms: [PerturbationTerm], decay: Float) = ([], 1)
    public private(set) var stepsTaken = 0

    public init(runner: ResidentRunner, options: MeZOOptions, seed: UInt64) {
        precondition(options.q >= 1)
        self.runner = runner
        self.options = options
        runSeed = seed
        tensors = Self.tensorTable(runner.model)
    }

    /// Every group's tensors with their global ids (model order) and decay rule.
    static func tensorTable(_ model: any CausalLM) -> [[PerturbedTensor]] {
        var id: UInt32 = 0
        return model.groups.map { group in
            group.layout.specs.map { spec in
                defer { id += 1 }
                return PerturbedTensor(offset: spec.offset, count: spec.count, id: id, decays: spec.kind == .matrix || spec.kind == .embedding)
            }
        }
    }

    /// The seed of perturbation `j` of step `step` (a SplitMix64 hash of the run seed).
    public func seed(step: Int, perturbation j: Int) -> UInt64 {
        var generator = SplitMix64(seed: runSeed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(j) << 56)
        return generator.next()
    }

    private func pass(_ terms: [PerturbationTerm], decay: Float) {
        guard !terms.isEmpty || decay != 1 else { return }
        for (group, buffer) in runner.deviceGroups.enumerated() {
            runner.backend.perturb(buffer, tensors: tensors[group], terms: terms, decayFactor: decay, kind: options.perturbation)
        }
    }

    /// One step at learning rate `lr`: `loss` is evaluated at θ + εz and θ − εz for each of
    /// the q perturbations (it must run the model through `runner`).
    public func step(lr: Float, loss: () throws -> Double) throws -> MeZOStep {
        let eps = options.eps, q = options.q
        let step = stepsTaken
        var seeds: [UInt64] = [], gradients: [Double] = []
        var plus = 0.0, minus = 0.0
        var finite = true
        for j in 0..<q {
            let seed = self.seed(step: step, perturbation: j)
            seeds.append(seed)
            var terms = j == 0 ? pending.terms : [PerturbationTerm(seed: seeds[j - 1], coefficient: eps)]
            terms.append(PerturbationTerm(seed: seed, coefficient: eps))
            pass(terms, decay: j == 0 ? pending.decay : 1)
            pending = ([], 1)
            let lossPlus = try loss()
            pass([PerturbationTerm(seed: seed, coefficient: -2 * eps)], decay: 1)
            let lossMinus = try loss()
            finite = finite && lossPlus.isFinite && lossMinus.isFinite
            plus += lossPlus / Double(q)
            minus += lossMinus / Double(q)
            gradients.append((lossPlus - lossMinus) / (2 * Double(eps)))
        }
        // Pending: restore the last perturbation and, unless a loss was not finite, update:
        // θ ← a·(θ + εz_last) − (lr/q)·Σ_j g_j z_j with a = 1 − lr·wd on decaying tensors.
        let decay = finite ? 1 - lr * options.weightDecay : 1
        var terms: [PerturbationTerm] = []
        for (j, seed) in seeds.enumerated() {
            let update = finite ? -lr * Float(gradients[j]) / Float(q) : 0
            let restore: Float = j == q - 1 ? eps : 0
            terms.append(PerturbationTerm(seed: seed, coefficient: restore + update, decayCoefficient: decay * restore + update))
        }
        pending = (terms.filter { $0.coefficient != 0 || $0.decayCoefficient != 0 }, decay)
        stepsTaken += 1
        let mean = gradients.reduce(0, +) / Double(q)
        return MeZOStep(step: step, lossPlus: plus, lossMinus: minus, projectedGradient: mean, learningRate: lr,
                        seeds: seeds, projectedGradients: gradients, skipped: !finite)
    }

    /// Applies the pending restore and update, leaving the parameters at θ_{t+1}.
    public func flush() {
        pass(pending.terms, decay: pending.decay)
        pending = ([], 1)
    }

    /// Whether an update is waiting for `flush()`.
    public var hasPendingUpdate: Bool { !pending.terms.isEmpty || pending.decay != 1 }
}
