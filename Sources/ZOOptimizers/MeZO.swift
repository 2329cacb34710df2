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

/// ZO-SGD as in MeZO's Algorithm 1 (Malladi et al., 2023), over every parameter of a model
/// wherever its runner keeps it, with z regenerated from seeds and the passes fused: the
/// restore and the update of step t go into the same pass as the +ε perturbation of step t+1,
/// so a step makes two passes over the parameters. The update of the last step stays pending
/// until `flush()`, which must run before evaluating or saving.
public final class MeZO {
    public let runner: any ModelRunner
    public let options: MeZOOptions
    /// The run's seed; step t's perturbation j uses `seed(step: t, perturbation: j)`.
    public let runSeed: UInt64
    private var pending: PerturbationPass
    public private(set) var stepsTaken = 0

    public init(runner: any ModelRunner, options: MeZOOptions, seed: UInt64) {
        precondition(options.q >= 1)
        self.runner = runner
        self.options = options
        runSeed = seed
        pending = PerturbationPass(terms: [], kind: options.perturbation)
    }

    /// The seed of perturbation `j` of step `step` (a SplitMix64 hash of the run seed).
    public func seed(step: Int, perturbation j: Int) -> UInt64 {
        var generator = SplitMix64(seed: runSeed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(j) << 56)
        return generator.next()
    }

    /// One step at learning rate `lr`: the plan's loss at θ + εz and θ − εz for each of the q
    /// perturbations, both forward passes of a pair in one `dualForward`.
    public func step(lr: Float, loss plan: LossPlan) throws -> MeZOStep {
        let eps = options.eps, q = options.q, kind = options.perturbation
        let step = stepsTaken
        var seeds: [UInt64] = [], gradients: [Double] = []
        var plus = 0.0, minus = 0.0
        var finite = true
        for j in 0..<q {
            let seed = self.seed(step: step, perturbation: j)
            seeds.append(seed)
            var forward = j == 0 ? pending : PerturbationPass(terms: [PerturbationTerm(seed: seeds[j - 1], coefficient: eps)], kind: kind)
            forward.terms.append(PerturbationTerm(seed: seed, coefficient: eps))
            pending = PerturbationPass(terms: [], kind: kind)
            let results = try runner.dualForward(plan.requests, plus: forward,
                                                 minus: PerturbationPass(terms: [PerturbationTerm(seed: seed, coefficient: -2 * eps)], kind: kind))
            let lossPlus = plan.reduce(results.plus), lossMinus = plan.reduce(results.minus)
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
        pending = PerturbationPass(terms: terms.filter { $0.coefficient != 0 || $0.decayCoefficient != 0 }, decayFactor: decay, kind: kind)
        stepsTaken += 1
        let mean = gradients.reduce(0, +) / Double(q)
        return MeZOStep(step: step, lossPlus: plus, lossMinus: minus, projectedGradient: mean, learningRate: lr,
                        seeds: seeds, projectedGradients: gradients, skipped: !finite)
    }

    /// One step whose loss is a single forward pass over `batch` (HF's mean loss).
    public func step(lr: Float, batch: TokenBatch) throws -> MeZOStep {
        try step(lr: lr, loss: LossPlan(requests: [ForwardRequest(batch)]) { $0[0].meanLoss })
    }

    /// Applies the pending restore and update, leaving the parameters at θ_{t+1}.
    public func flush() throws {
        try runner.perturb(pending)
        pending = PerturbationPass(terms: [], kind: options.perturbation)
    }

    /// Whether an update is waiting for `flush()`.
    public var hasPendingUpdate: Bool { !pending.isIdentity }
}
