import ZOCore
import ZOModels

/// Hyperparameters of ZO-SGD.
public struct MeZOOptions: Sendable, Equatable, Codable {
    /// ε: the perturbation scale.
    public var eps: Float = 1e-3
    /// Weight decay (skipped for biases and norms).
    public var weightDecay: Float = 0
    /// MeZO's perturbations per step (two-point estimates, averaged); 1 with a population.
    public var q: Int = 1
    public var perturbation: PerturbationKind = .gaussian
    /// The low-rank estimator for the blocks' 2-D weights (the runner must have its factors);
    /// nil: full perturbations everywhere.
    public var lowRank: LowRankOptions?
    /// A population estimator instead of MeZO's two-point one; nil: MeZO.
    public var population: PopulationOptions?
    /// A LoRA adapter trained over the frozen base (the runner must hold it); nil: the base's
    /// parameters train.
    public var lora: LoRAOptions?

    public init(eps: Float = 1e-3, weightDecay: Float = 0, q: Int = 1, perturbation: PerturbationKind = .gaussian,
                lowRank: LowRankOptions? = nil, population: PopulationOptions? = nil, lora: LoRAOptions? = nil) {
        precondition(lowRank == nil || lora == nil, "a LoRA run has no low-rank estimator")
        self.eps = eps
        self.weightDecay = weightDecay
        self.q = q
        self.perturbation = perturbation
        self.lowRank = lowRank
        self.population = population
        self.lora = lora
    }

    /// What the runner's blocks need beside their weights: the low-rank factors or the LoRA adapter.
    public var adapterFactory: (any LinearAdapterFactory)? { lowRank ?? lora }

    /// The estimator these options describe.
    public var estimator: any GradientEstimator {
        population.map { PopulationEstimator($0) } ?? TwoPointEstimator(directions: q)
    }

    /// D: directions per step (one coefficient each in a trajectory).
    public var directions: Int { estimator.directions }

    /// The estimator in a few words ("q 1", "population N 8 one-sided std", "q 1, LoRA r 8 α 16 q_proj,v_proj").
    public var estimatorSummary: String {
        let adapter = lora.map { ", LoRA r \($0.rank) α \($0.alpha) \($0.targets.joined(separator: ","))" } ?? ""
        guard let population else { return "q \(q)" + adapter }
        return "population N \(population.queries) \(population.oneSided ? "one-sided" : "two-sided") \(population.normalize.rawValue)"
            + adapter
    }

    /// Forward passes of the whole batch per step.
    public var streams: Int { estimator.streams.count }
}

/// What one ZO step measured.
public struct MeZOStep: Sendable, Equatable {
    public let step: Int
    /// Losses at θ + εz and θ − εz (MeZO; averaged when q > 1), or a population's mean
    /// perturbed loss and its unperturbed (one-sided) or mean − loss.
    public let lossPlus: Double
    public let lossMinus: Double
    /// The mean of the coefficients g_j (MeZO: (L+ − L−) / 2ε, the projected gradient).
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

/// ZO-SGD as in MeZO's Algorithm 1 (Malladi et al., 2023), with MeZO's two-point estimator or
/// any other `GradientEstimator`, over every parameter of a model wherever its runner keeps it,
/// z regenerated from seeds and the passes fused: a step's streams go through the model in one
/// `ModelRunner.forward(_:streams:snapshot:)`, each stream's pass taking the parameters from
/// the previous stream's values to its own, and the restore and the update of step t go into
/// the first pass of step t+1 — one pass over the parameters per stream. The update of the
/// last step stays pending until `flush()`, which must run before evaluating or saving.
public final class MeZO {
    public let runner: any ModelRunner
    public let options: MeZOOptions
    public let estimator: any GradientEstimator
    /// The run's seed; step t's perturbation j uses `seed(step: t, perturbation: j)`.
    public let runSeed: UInt64
    /// The low-rank estimator's factors: the runner's adapter, with `options.lowRank`.
    private let lowRank: LowRankState?
    /// The LoRA adapter: the runner's adapter, with `options.lora`.
    public let lora: LoRAState?
    private var pending: PerturbationPass
    public private(set) var stepsTaken: Int
    /// The processes this one shares its steps with (nil: it evaluates every stream alone).
    public let sharing: (any StepSharing)?

    /// `startStep`: the steps already taken (a run resumed from a checkpoint after step k
    /// starts at k, with the flushed weights of step k in the runner).
    /// `sharing`: the other processes of a distributed run, which evaluate some of the streams
    /// (and the rest of the batch).
    public init(runner: any ModelRunner, options: MeZOOptions, seed: UInt64, startStep: Int = 0, sharing: (any StepSharing)? = nil) {
        precondition(options.q >= 1 && startStep >= 0 && (options.population == nil || options.q == 1))
        lowRank = runner.adapter as? LowRankState
        lora = runner.adapter as? LoRAState
        precondition(lowRank?.options == options.lowRank && lora?.options == options.lora
                     && (runner.adapter == nil || lowRank != nil || lora != nil),
                     "low-rank or LoRA options and the runner's adapter go together")
        precondition(options.lowRank == nil || (options.perturbation == .gaussian && options.weightDecay == 0 && startStep == 0),
                     "the low-rank estimator is Gaussian, without weight decay, from step 0")
        self.runner = runner
        self.options = options
        estimator = options.estimator
        runSeed = seed
        stepsTaken = startStep
        self.sharing = sharing
        pending = PerturbationPass(terms: [], kind: options.perturbation)
    }

    /// The seed of perturbation `j` of step `step` (a SplitMix64 hash of the run seed).
    public func seed(step: Int, perturbation j: Int) -> UInt64 {
        var generator = SplitMix64(seed: runSeed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(j) << 56)
        return generator.next()
    }

    /// One step at learning rate `lr`: the plan's loss at every stream of the estimator, all in
    /// one `forward(_:streams:)`. A `snapshot` receives the weights after the previous step (the
    /// flushed θ_t), copied by the step's first pass as it applies the pending update.
    /// `observe` sees the streams' results (a hybrid run backpropagates its first-order part
    /// from them). With `sharing`, the plan is this process's part of the batch (made from
    /// per-example losses), its streams those `sharing` assigns, and the losses the exchange's.
    public func step(lr: Float, loss plan: LossPlan, snapshot: ParameterSnapshot? = nil,
                     observe: ((_ streams: [[ForwardResult]]) throws -> Void)? = nil) throws -> MeZOStep {
        let step = stepsTaken
        let seeds = (0..<estimator.directions).map { seed(step: step, perturbation: $0) }
        try beginLowRankStep(step)
        let request = snapshot.map { SnapshotRequest(target: $0, afterTerms: pending.terms.count) }
        var streams = perturbedStreams(seeds)
        if let sharing {
            for s in streams.indices { streams[s].evaluated = sharing.evaluates(stream: s, of: streams.count) }
        }
        if let lowRank {
            let scale = options.eps / Float(lowRank.options.rank).squareRoot()
            try lowRank.prepare(streams: estimator.streams.map { offset in
                offset.map { PerturbationTerm(seed: seeds[$0.direction], coefficient: $0.multiple * scale) }
            })
        }
        try lora?.prepare(streams: estimator.streams.map { offset in
            offset.map { PerturbationTerm(seed: seeds[$0.direction], coefficient: $0.multiple * options.eps) }
        }, kind: options.perturbation)
        let results = try runner.forward(plan.requests, streams: streams, snapshot: request)
        try observe?(results)
        let losses = try sharing.map { sharing in
            guard let examples = plan.examples else { preconditionFailure("a shared step needs a loss made of per-example parts") }
            return try sharing.gather(zip(streams, results).map { $0.evaluated ? examples($1) : nil }).map(LossPlan.combine)
        } ?? results.map(plan.reduce)
        let gradients = estimator.coefficients(losses: losses, eps: options.eps)
        let finite = losses.allSatisfy(\.isFinite) && gradients.allSatisfy { Float($0).isFinite }
        commit(lr: lr, seeds: seeds, gradients: gradients.map(Float.init), finite: finite)
        let reported = estimator.reportedLosses(losses)
        return MeZOStep(step: step, lossPlus: reported.plus, lossMinus: reported.minus,
                        projectedGradient: gradients.reduce(0, +) / Double(gradients.count), learningRate: lr,
                        seeds: seeds, projectedGradients: gradients, skipped: !finite)
    }

    /// One step whose loss is a single forward pass over `batch` (HF's mean loss).
    public func step(lr: Float, batch: TokenBatch) throws -> MeZOStep {
        try step(lr: lr, loss: LossPlan(requests: [ForwardRequest(batch)]) { $0[0].meanLoss })
    }

    /// Replays a recorded step without forward passes: the same perturbation passes as
    /// `step`, then the update from the recorded coefficients (as Float, as the update uses
    /// them; NaN marks a step that was skipped). The parameters end bit-identical to the
    /// recorded run's.
    public func replay(lr: Float, gradients: [Float]) throws {
        precondition(gradients.count == estimator.directions, "one coefficient per direction")
        try beginLowRankStep(stepsTaken)
        let seeds = (0..<estimator.directions).map { seed(step: stepsTaken, perturbation: $0) }
        for stream in perturbedStreams(seeds) { try runner.perturb(stream.pass) }
        commit(lr: lr, seeds: seeds, gradients: gradients, finite: gradients.allSatisfy(\.isFinite))
    }

    /// The step's streams as passes: the first applies the pending update, each then moves the
    /// parameters from the previous stream's offset to its own (terms along the same direction
    /// merged: MeZO's − pass is one term, −2εz).
    private func perturbedStreams(_ seeds: [UInt64]) -> [PerturbedStream] {
        let eps = options.eps, kind = options.perturbation, adapted = lowRank != nil || lora != nil
        var previous: [StreamOffset] = []
        defer { pending = PerturbationPass(terms: [], kind: kind) }
        return estimator.streams.enumerated().map { s, offset in
            var pass = s == 0 ? pending : PerturbationPass(terms: [], kind: kind)
            var moves: [(direction: Int, multiple: Float)] = previous.map { ($0.direction, -$0.multiple) }
            for term in offset {
                if let i = moves.firstIndex(where: { $0.direction == term.direction }) {
                    moves[i].multiple += term.multiple
                } else {
                    moves.append((term.direction, term.multiple))
                }
            }
            if !adapterOnly {
                pass.terms += moves.filter { $0.multiple != 0 }
                    .map { PerturbationTerm(seed: seeds[$0.direction], coefficient: $0.multiple * eps) }
            }
            previous = offset
            return PerturbedStream(pass: pass, adapterStream: adapted ? s : nil)
        }
    }

    /// Whether only the adapter trains (the low-rank weights alone, or LoRA): no full
    /// perturbation passes.
    private var adapterOnly: Bool { options.lowRank?.lowRankOnly ?? false || lora != nil }

    /// The seed of V for the low-rank epoch containing `step` (steps e·ν..<(e+1)·ν).
    public func lowRankSeed(epoch: Int) -> UInt64 {
        var generator = SplitMix64(seed: runSeed ^ (UInt64(epoch) &* 0xC2B2_AE3D_27D4_EB4F) ^ 0x10_0000_0000_0000)
        return generator.next()
    }

    /// At the start of every ν-th step: folds A Vᵀ into the weights (after the first epoch)
    /// and draws the epoch's V.
    private func beginLowRankStep(_ step: Int) throws {
        guard let lowRank, step % lowRank.options.resampleEvery == 0 else { return }
        if step > 0 { try runner.foldAdapter() }
        lowRank.resample(seed: lowRankSeed(epoch: step / lowRank.options.resampleEvery))
    }

    /// Makes the step's restore (from the last stream's offset) and update pending:
    /// θ ← a·(θ − offset_last) − (lr/D)·Σ_j g_j z_j with a = 1 − lr·wd on decaying tensors; a
    /// step with a non-finite loss only restores. The low-rank weights' update goes into A at
    /// once: A ← A − (lr/D)·Σ_j g_j U_j / √r; a LoRA adapter's too: A, B ← a·(A, B) − (lr/D)·Σ_j g_j z_j.
    private func commit(lr: Float, seeds: [UInt64], gradients: [Float], finite: Bool) {
        let eps = options.eps, d = Float(estimator.directions), last = estimator.streams.last ?? []
        if let lowRank, finite {
            let scale = 1 / Float(lowRank.options.rank).squareRoot()
            lowRank.update(seeds.indices.map { PerturbationTerm(seed: seeds[$0], coefficient: -lr * gradients[$0] / d * scale) })
        }
        let decay = finite ? 1 - lr * options.weightDecay : 1
        if let lora, finite {
            lora.update(seeds.indices.map { PerturbationTerm(seed: seeds[$0], coefficient: -lr * gradients[$0] / d) }, decayFactor: decay,
                        kind: options.perturbation)
        }
        var terms: [PerturbationTerm] = []
        for (j, seed) in seeds.enumerated() {
            let update = finite ? -lr * gradients[j] / d : 0
            let restore = last.first { $0.direction == j }.map { -$0.multiple * eps } ?? 0
            terms.append(PerturbationTerm(seed: seed, coefficient: restore + update, decayCoefficient: decay * restore + update))
        }
        // Only the adapter trains: the model's pass stays the identity (LoRA's factors decayed in `update`).
        pending = PerturbationPass(terms: adapterOnly ? [] : terms.filter { $0.coefficient != 0 || $0.decayCoefficient != 0 },
                                   decayFactor: adapterOnly ? 1 : decay, kind: options.perturbation)
        stepsTaken += 1
    }

    /// Applies the pending restore and update, leaving the parameters at θ_{t+1}; a
    /// `snapshot` receives them too.
    /// With the low-rank estimator, A Vᵀ is folded into the weights too (V stays until the
    /// epoch ends).
    public func flush(snapshot: ParameterSnapshot? = nil) throws {
        try runner.perturb(pending, snapshot: snapshot.map { SnapshotRequest(target: $0, afterTerms: pending.terms.count) })
        pending = PerturbationPass(terms: [], kind: options.perturbation)
        try runner.foldAdapter()
    }

    /// Whether an update is waiting for `flush()`.
    public var hasPendingUpdate: Bool { !pending.isIdentity }
}
