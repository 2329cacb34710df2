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
    /// The low-rank estimator for the blocks' 2-D weights (the runner must have its factors);
    /// nil: full perturbations everywhere.
    public var lowRank: LowRankOptions?

    public init(eps: Float = 1e-3, weightDecay: Float = 0, q: Int = 1, perturbation: PerturbationKind = .gaussian,
                lowRank: LowRankOptions? = nil) {
        self.eps = eps
        self.weightDecay = weightDecay
        self.q = q
        self.perturbation = perturbation
        self.lowRank = lowRank
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

    public init(step: Int, lossPlus: Double, lossMinus: Double, projectedGradient: Double, learningRate: Float, seeds: [UInt64],
                projectedGradients: [Double], skipped: Bool) {
        self.step = step
        self.lossPlus = lossPlus
        self.lossMinus = lossMinus
        self.projectedGradient = projectedGradient
        self.learningRate = learningRate
        self.seeds = seeds
        self.projectedGradients = projectedGradients
        self.skipped = skipped
    }
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
    public private(set) var stepsTaken: Int

    /// `startStep`: the steps already taken (a run resumed from a checkpoint after step k
    /// starts at k, with the flushed weights of step k in the runner).
    public init(runner: any ModelRunner, options: MeZOOptions, seed: UInt64, startStep: Int = 0) {
        precondition(options.q >= 1 && startStep >= 0)
        precondition((options.lowRank == nil) == (runner.lowRank == nil), "low-rank options and the runner's factors go together")
        precondition(options.lowRank == nil || (options.perturbation == .gaussian && options.weightDecay == 0 && startStep == 0),
                     "the low-rank estimator is Gaussian, without weight decay, from step 0")
        self.runner = runner
        self.options = options
        runSeed = seed
        stepsTaken = startStep
        pending = PerturbationPass(terms: [], kind: options.perturbation)
    }

    /// The seed of perturbation `j` of step `step` (a SplitMix64 hash of the run seed).
    public func seed(step: Int, perturbation j: Int) -> UInt64 {
        var generator = SplitMix64(seed: runSeed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(j) << 56)
        return generator.next()
    }

    /// One step at learning rate `lr`: the plan's loss at θ + εz and θ − εz for each of the q
    /// perturbations, both forward passes of a pair in one `dualForward`. A `snapshot` receives
    /// the weights after the previous step (the flushed θ_t), copied by the step's first pass
    /// as it applies the pending update. `observe` sees each perturbation's results (a hybrid
    /// run backpropagates its first-order part from them).
    public func step(lr: Float, loss plan: LossPlan, snapshot: ParameterSnapshot? = nil,
                     observe: ((_ plus: [ForwardResult], _ minus: [ForwardResult]) throws -> Void)? = nil) throws -> MeZOStep {
        let step = stepsTaken, q = options.q
        var seeds: [UInt64] = [], gradients: [Double] = []
        var plus = 0.0, minus = 0.0
        var finite = true
        try beginLowRankStep(step)
        for j in 0..<q {
            seeds.append(seed(step: step, perturbation: j))
            let request = j == 0 ? snapshot.map { SnapshotRequest(target: $0, afterTerms: pending.terms.count) } : nil
            let (forward, backward) = passes(seeds, j)
            if let lowRank = runner.lowRank { lowRank.prepare(seed: seeds[j], scale: options.eps / Float(lowRank.options.rank).squareRoot()) }
            let results = try runner.dualForward(plan.requests, plus: forward, minus: backward, snapshot: request)
            try observe?(results.plus, results.minus)
            let lossPlus = plan.reduce(results.plus), lossMinus = plan.reduce(results.minus)
            finite = finite && lossPlus.isFinite && lossMinus.isFinite
            plus += lossPlus / Double(q)
            minus += lossMinus / Double(q)
            gradients.append((lossPlus - lossMinus) / (2 * Double(options.eps)))
        }
        commit(lr: lr, seeds: seeds, gradients: gradients.map(Float.init), finite: finite)
        let mean = gradients.reduce(0, +) / Double(q)
        return MeZOStep(step: step, lossPlus: plus, lossMinus: minus, projectedGradient: mean, learningRate: lr,
                        seeds: seeds, projectedGradients: gradients, skipped: !finite)
    }

    /// One step whose loss is a single forward pass over `batch` (HF's mean loss).
    public func step(lr: Float, batch: TokenBatch) throws -> MeZOStep {
        try step(lr: lr, loss: LossPlan(requests: [ForwardRequest(batch)]) { $0[0].meanLoss })
    }

    /// Replays a recorded step without forward passes: the same perturbation passes as
    /// `step`, then the update from the recorded projected gradients (as Float, as the update
    /// uses them; NaN marks a step that was skipped). The parameters end bit-identical to
    /// the recorded run's.
    public func replay(lr: Float, gradients: [Float]) throws {
        precondition(gradients.count == options.q, "one projected gradient per perturbation")
        try beginLowRankStep(stepsTaken)
        let seeds = (0..<options.q).map { seed(step: stepsTaken, perturbation: $0) }
        for j in seeds.indices {
            let (forward, backward) = passes(seeds, j)
            try runner.perturb(forward)
            try runner.perturb(backward)
        }
        commit(lr: lr, seeds: seeds, gradients: gradients, finite: gradients.allSatisfy(\.isFinite))
    }

    /// Perturbation j's two passes: the pending update (j = 0) or the restore of perturbation
    /// j − 1, then +εz_j; and −2εz_j.
    private func passes(_ seeds: [UInt64], _ j: Int) -> (PerturbationPass, PerturbationPass) {
        let eps = options.eps, kind = options.perturbation
        var forward = j == 0 ? pending : PerturbationPass(terms: [PerturbationTerm(seed: seeds[j - 1], coefficient: eps)], kind: kind)
        forward.terms.append(PerturbationTerm(seed: seeds[j], coefficient: eps))
        pending = PerturbationPass(terms: [], kind: kind)
        return (forward, PerturbationPass(terms: [PerturbationTerm(seed: seeds[j], coefficient: -2 * eps)], kind: kind))
    }

    /// The seed of V for the low-rank epoch containing `step` (steps e·ν..<(e+1)·ν).
    public func lowRankSeed(epoch: Int) -> UInt64 {
        var generator = SplitMix64(seed: runSeed ^ (UInt64(epoch) &* 0xC2B2_AE3D_27D4_EB4F) ^ 0x10_0000_0000_0000)
        return generator.next()
    }

    /// At the start of every ν-th step: folds A Vᵀ into the weights (after the first epoch)
    /// and draws the epoch's V.
    private func beginLowRankStep(_ step: Int) throws {
        guard let lowRank = runner.lowRank, step % lowRank.options.resampleEvery == 0 else { return }
        if step > 0 { try runner.foldLowRank() }
        lowRank.resample(seed: lowRankSeed(epoch: step / lowRank.options.resampleEvery))
    }

    /// Makes the step's restore and update pending: θ ← a·(θ + εz_last) − (lr/q)·Σ_j g_j z_j
    /// with a = 1 − lr·wd on decaying tensors; a step with a non-finite loss only restores.
    /// The low-rank weights' update goes into A at once: A ← A − (lr/q)·Σ_j g_j U_j / √r.
    private func commit(lr: Float, seeds: [UInt64], gradients: [Float], finite: Bool) {
        let eps = options.eps, q = options.q
        if let lowRank = runner.lowRank, finite {
            let scale = 1 / Float(lowRank.options.rank).squareRoot()
            lowRank.update(seeds.indices.map { PerturbationTerm(seed: seeds[$0], coefficient: -lr * gradients[$0] / Float(q) * scale) })
        }
        let decay = finite ? 1 - lr * options.weightDecay : 1
        var terms: [PerturbationTerm] = []
        for (j, seed) in seeds.enumerated() {
            let update = finite ? -lr * gradients[j] / Float(q) : 0
            let restore: Float = j == q - 1 ? eps : 0
            terms.append(PerturbationTerm(seed: seed, coefficient: restore + update, decayCoefficient: decay * restore + update))
        }
        pending = PerturbationPass(terms: terms.filter { $0.coefficient != 0 || $0.decayCoefficient != 0 }, decayFactor: decay,
                                   kind: options.perturbation)
        stepsTaken += 1
    }

    /// Applies the pending restore and update, leaving the parameters at θ_{t+1}; a
    /// `snapshot` receives them too.
    /// With the low-rank estimator, A Vᵀ is folded into the weights too (V stays until the
    /// epoch ends).
    public func flush(snapshot: ParameterSnapshot? = nil) throws {
        try runner.perturb(pending, snapshot: snapshot.map { SnapshotRequest(target: $0, afterTerms: pending.terms.count) })
        pending = PerturbationPass(terms: [], kind: options.perturbation)
        try runner.foldLowRank()
    }

    /// Whether an update is waiting for `flush()`.
    public var hasPendingUpdate: Bool { !pending.isIdentity }
}
