import ZOCore
import ZOModels
import ZOOptimizers
import ZOTasks

/// Options of a ZO training run.
public struct TrainingOptions: Sendable, Codable, Equatable {
    public var steps: Int
    public var batchSize: Int
    public var schedule: LearningRateSchedule
    public var mezo: MeZOOptions
    public var seed: UInt64
    /// Evaluate every this many steps (0: only before and after).
    public var evalEvery: Int
    /// Stop after this many steps with a non-finite loss.
    public var maxNonFiniteSteps: Int
    /// The first-order part of a hybrid (or first-order-only) run; nil for plain MeZO.
    public var firstOrder: FirstOrderOptions?

    public init(steps: Int, batchSize: Int, schedule: LearningRateSchedule, mezo: MeZOOptions, seed: UInt64,
                evalEvery: Int = 0, maxNonFiniteSteps: Int = 10, firstOrder: FirstOrderOptions? = nil) {
        self.steps = steps
        self.batchSize = batchSize
        self.schedule = schedule
        self.mezo = mezo
        self.seed = seed
        self.evalEvery = evalEvery
        self.maxNonFiniteSteps = maxNonFiniteSteps
        self.firstOrder = firstOrder
    }
}

/// How a run trains the deepest blocks first-order (the second seed's hybrid ZO/FO).
public struct FirstOrderOptions: Sendable, Codable, Equatable {
    /// k: the deepest blocks, with the final norm and the head, trained by backpropagation.
    public var blocks: Int
    /// Whether the embedding trains first-order too (a full first-order run, k = L).
    public var embedding: Bool
    /// Whether the shallower blocks (and the embedding) take ZO steps (hybrid) or stay frozen
    /// (first-order on the deepest blocks alone: the ablation that says what ZO adds).
    public var zeroOrder: Bool
    public var rule: FirstOrderRule
    /// The first-order part's peak learning rate; it follows the run's schedule shape.
    public var learningRate: Float
    public var statePlacement: OptimizerStatePlacement

    public init(blocks: Int, embedding: Bool = false, zeroOrder: Bool, rule: FirstOrderRule, learningRate: Float,
                statePlacement: OptimizerStatePlacement = .device) {
        self.blocks = blocks
        self.embedding = embedding
        self.zeroOrder = zeroOrder
        self.rule = rule
        self.learningRate = learningRate
        self.statePlacement = statePlacement
    }
}

/// What happened during training, in order.
public enum TrainingEvent: Sendable {
    case evaluation(step: Int, metrics: [String: Double])
    /// A step over the training examples `batch`, `tokens` of them in one forward pass of it.
    case step(MeZOStep, batch: [Int], tokens: Int, seconds: Double)
    case checkpoint(step: Int, outcome: CheckpointOutcome)
}

/// What became of a checkpoint that fell due.
public enum CheckpointOutcome: Sendable, Equatable {
    /// Written completely (reported once the writer finished).
    case saved(path: String)
    /// Not taken: the previous save was still being written.
    case skipped
    /// Writing failed; training went on (`CheckpointPolicy.continueOnError`).
    case failed(String)
}

/// When and where a run saves checkpoints, and what it records to make them resumable.
public struct CheckpointPolicy {
    /// Save after every this many steps (and after the last step).
    public var every: Int
    public var writer: CheckpointWriter
    /// On a failed save: go on training without that checkpoint (true) or stop (false).
    public var continueOnError: Bool
    /// sha256 of the base model (`ModelFingerprint`) and the caller's description of the run.
    public var baseModelSHA256: String
    public var run: [String: String]

    public init(every: Int, writer: CheckpointWriter, continueOnError: Bool, baseModelSHA256: String, run: [String: String]) {
        precondition(every >= 1)
        self.every = every
        self.writer = writer
        self.continueOnError = continueOnError
        self.baseModelSHA256 = baseModelSHA256
        self.run = run
    }
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible {
    case tooManyNonFiniteSteps(Int)
    /// The task's loss has no gradient, so it cannot train first-order.
    case noGradient(String)

    public var description: String {
        switch self {
        case .tooManyNonFiniteSteps(let count): "stopped: \(count) steps had a non-finite loss"
        case .noGradient(let task): "\(task) does not provide its loss's gradient; it cannot be trained first-order"
        }
    }
}

/// Runs MeZO on a task: seeded batches, the learning-rate schedule, evaluations (with the
/// pending update flushed first), asynchronous checkpoints, the trajectory log, and a final
/// flush.
///
/// A checkpoint due after step k is captured by step k+1's first pass (which applies step
/// k's update anyway) into the writer's snapshot and written on the writer's thread while
/// training goes on; flushing is bit-identical to the fused pass, so saving never changes
/// the trajectory, and a run resumed from the checkpoint continues it bit for bit. A LoRA
/// run's checkpoint is its adapter, downloaded as the step that falls due ends.
public final class Trainer {
    public let runner: any ModelRunner
    public let task: any TrainingTask
    public let options: TrainingOptions
    public let optimizer: MeZO
    /// The first-order part's optimizer (hybrid and first-order-only runs).
    public let firstOrder: FirstOrderOptimizer?
    public let checkpointing: CheckpointPolicy?
    public let trajectory: TrajectoryLog?
    /// The state this run resumed from, if any.
    public let resumed: CheckpointState?
    /// The other processes of a distributed run (nil: this process trains alone).
    public let group: (any TrainingGroup)?

    /// Steps taken so far (the run's step counter).
    public private(set) var stepsTaken: Int

    /// A run from step 0, or from `resume` (whose weights the runner must hold). With
    /// `options.firstOrder`, `firstOrder` updates the runner's tail. With a `group`, this process
    /// runs its share of every step (every process of the group calls `run` with the same
    /// options; only one should be given checkpointing and a trajectory).
    public init(runner: any ModelRunner, task: any TrainingTask, options: TrainingOptions, checkpointing: CheckpointPolicy? = nil,
                trajectory: TrajectoryLog? = nil, resume: CheckpointState? = nil, firstOrder: FirstOrderOptimizer? = nil,
                group: (any TrainingGroup)? = nil) {
        precondition((options.firstOrder == nil) == (firstOrder == nil), "first-order options and optimizer go together")
        self.group = group
        self.firstOrder = firstOrder
        stepsTaken = resume?.step ?? 0
        self.runner = runner
        self.task = task
        self.options = options
        self.checkpointing = checkpointing
        self.trajectory = trajectory
        resumed = resume
        optimizer = MeZO(runner: runner, options: options.mezo, seed: options.seed, startStep: resume?.step ?? 0, sharing: group)
    }

    /// Trains up to `options.steps` steps, reporting every event; returns the final metrics.
    /// `shouldStop` is polled between steps (Ctrl-C); the pending update is flushed either
    /// way, and with checkpointing the last state is saved (waiting for the disk).
    public func run(shouldStop: () -> Bool = { false }, report: (TrainingEvent) throws -> Void) throws -> [String: Double] {
        var sampler = BatchSampler(count: task.trainingCount, batchSize: options.batchSize, seed: options.seed,
                                   batches: resumed?.step ?? 0)
        var nonFinite = resumed?.nonFiniteSteps ?? 0
        let initialMetrics: [String: Double]
        if let resumed {
            initialMetrics = resumed.initialMetrics
        } else {
            initialMetrics = try task.evaluate(runner: runner)
            try report(.evaluation(step: 0, metrics: initialMetrics))
        }
        func state() -> CheckpointState? {
            checkpointing.map {
                CheckpointState(step: stepsTaken, options: options, sampler: sampler.currentPosition, nonFiniteSteps: nonFinite,
                                baseModelSHA256: $0.baseModelSHA256, run: $0.run, initialMetrics: initialMetrics)
            }
        }
        /// The snapshot a pass should fill for the checkpoint `due`, or nil: none due, or the
        /// writer is still busy with the previous one (then this one is reported skipped).
        func capture(_ due: CheckpointState?) throws -> ParameterSnapshot? {
            guard let due, let writer = checkpointing?.writer else { return nil }
            guard !writer.isBusy else {
                try report(.checkpoint(step: due.step, outcome: .skipped))
                return nil
            }
            return writer.snapshot
        }
        /// Saves `due` from the snapshot the last pass filled.
        func submit(_ due: CheckpointState) throws {
            try trajectory?.sync()
            checkpointing?.writer.submit(due)
        }
        /// A LoRA run's checkpoint `due`, saved at once: the adapter's updates are applied as
        /// steps end, so it stands at `due.step` (skipped while a save is in flight).
        func saveAdapter(_ due: CheckpointState) throws {
            guard let writer = checkpointing?.writer, let lora = optimizer.lora else { return }
            guard !writer.isBusy else { return try report(.checkpoint(step: due.step, outcome: .skipped)) }
            try trajectory?.sync()
            writer.submit(due, adapter: try lora.peftAdapter())
        }
        /// Reports finished saves; a failure stops training unless the policy says go on.
        func collect() throws {
            guard let policy = checkpointing else { return }
            for step in policy.writer.takeSaved() {
                try report(.checkpoint(step: step, outcome: .saved(path: policy.writer.checkpoints.path(step: step))))
            }
            if let error = policy.writer.takeError() {
                guard policy.continueOnError else { throw error }
                try report(.checkpoint(step: stepsTaken, outcome: .failed(error.description)))
            }
        }

        try group?.verifyReplicas(runner, step: nil)
        var due: CheckpointState?
        for step in stepsTaken..<options.steps where !shouldStop() {
            let batch = sampler.next()
            let snapshot = try capture(due)
            let start = monotonicSeconds()
            let plan = try task.lossPlan(group?.shard(batch) ?? batch, model: runner.model)
            let localTokens = plan.requests.reduce(0) { $0 + $1.batch.lengths.reduce(0, +) }
            group?.willStep(tokens: localTokens)
            let result = try firstOrder == nil ? optimizer.step(lr: options.schedule.rate(at: step), loss: plan, snapshot: snapshot)
                                               : hybridStep(step, plan: plan)
            stepsTaken += 1
            if let pending = due, snapshot != nil { try submit(pending) }
            due = nil
            try trajectory?.append(result)
            try report(.step(result, batch: batch, tokens: group?.stepTokens ?? localTokens, seconds: monotonicSeconds() - start))
            if result.skipped {
                nonFinite += 1
                if nonFinite >= options.maxNonFiniteSteps {
                    try optimizer.flush()
                    throw TrainingError.tooManyNonFiniteSteps(nonFinite)
                }
            }
            if let every = group?.verifyEvery, every > 0, (step + 1) % every == 0, step + 1 < options.steps {
                try group?.verifyReplicas(runner, step: step + 1)
            }
            if let every = checkpointing?.every, (step + 1) % every == 0, step + 1 < options.steps { due = state() }
            if optimizer.lora != nil, let pending = due {
                try saveAdapter(pending)
                due = nil
            }
            if options.evalEvery > 0, (step + 1) % options.evalEvery == 0, step + 1 < options.steps {
                let snapshot = try capture(due)
                try optimizer.flush(snapshot: snapshot)
                if let pending = due, snapshot != nil { try submit(pending) }
                due = nil
                try report(.evaluation(step: step + 1, metrics: try task.evaluate(runner: runner)))
            }
            try collect()
        }
        // Before the writer's waits, which only this process makes: the others do not sit in the exchange meanwhile.
        try group?.verifyReplicas(runner, step: stepsTaken)
        if let writer = checkpointing?.writer, stepsTaken != resumed?.step {
            writer.wait()
            try collect()
            try optimizer.flush(snapshot: writer.snapshot)
            if optimizer.lora != nil { try saveAdapter(state()!) } else { try submit(state()!) }
            writer.wait()
            try collect()
        } else {
            try optimizer.flush()
        }
        let final = try task.evaluate(runner: runner)
        try report(.evaluation(step: stepsTaken, metrics: final))
        return final
    }

    /// One step of a run with a first-order part: the ZO step (or, with ZO off, one plain
    /// forward pass) with the tail recording, the tail's backward from the loss gradient —
    /// for ZO, the mean of the streams' gradients — and the first-order update.
    /// A non-finite loss skips both updates.
    private func hybridStep(_ step: Int, plan: LossPlan) throws -> MeZOStep {
        guard let firstOrder, let settings = options.firstOrder else { preconditionFailure("no first-order part") }
        let tail = firstOrder.tail
        guard let gradient = plan.gradient else { throw TrainingError.noGradient(String(describing: type(of: task))) }
        tail.isRecording = true
        defer { tail.isRecording = false }
        var rates = options.schedule
        rates.base = settings.learningRate
        let lr = options.schedule.rate(at: step)
        let result: MeZOStep
        if settings.zeroOrder {
            result = try optimizer.step(lr: lr, loss: plan) { streams in
                // With a group, the streams another process evaluated have no results here.
                let evaluated = streams.filter { !$0.isEmpty }
                guard evaluated.allSatisfy({ plan.reduce($0).isFinite }) else { return tail.discardRecording() }
                let share = 1 / Float(streams.count)
                try tail.backward(evaluated.flatMap { gradient($0).map { $0.scaled(by: share) } })
            }
        } else {
            let results = try runner.forward(plan.requests)
            let loss = try group.map { group in
                guard let examples = plan.examples else { preconditionFailure("a shared step needs a loss made of per-example parts") }
                return LossPlan.combine(try group.gather([examples(results)])[0])
            } ?? plan.reduce(results)
            if loss.isFinite { try tail.backward(gradient(results)) } else { tail.discardRecording() }
            result = MeZOStep(step: step, lossPlus: loss, lossMinus: loss, projectedGradient: 0, learningRate: lr, seeds: [],
                              projectedGradients: [], skipped: !loss.isFinite)
        }
        if result.skipped {
            tail.zeroGradients()
            return result
        }
        if let group {
            // Each process's gradient is normalized over its own examples: scaled to its share of
            // the batch, the parts add up to the batch's gradient.
            let share = Float(group.shardShare)
            try tail.setGradients(try group.sum(try tail.gradientValues().map { $0 * share }))
        }
        try firstOrder.step(learningRate: rates.rate(at: step))
        return result
    }
}

/// Seeded mini-batches: every epoch a fresh permutation (Fisher-Yates with SplitMix64 seeded
/// by the run seed and the epoch); when the batch holds every example, all of them in file
/// order at every step.
public struct BatchSampler: Sendable {
    public let count: Int
    public let batchSize: Int
    public let seed: UInt64
    private var order: [Int] = []
    private var position = 0
    private var epoch = 0
    private var drawn = 0

    /// Where the sampler stands: batches drawn, and the epoch and place in its order.
    public struct Position: Codable, Sendable, Equatable {
        public var batches: Int
        public var epoch: Int
        public var offset: Int
    }

    /// A sampler that has already drawn `batches` batches (a resumed run's).
    public init(count: Int, batchSize: Int, seed: UInt64, batches: Int = 0) {
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        for _ in 0..<batches { _ = next() }
    }

    public var currentPosition: Position { Position(batches: drawn, epoch: epoch, offset: position) }

    public mutating func next() -> [Int] {
        drawn += 1
        if batchSize >= count { return Array(0..<count) }
        var batch: [Int] = []
        while batch.count < batchSize {
            if position == order.count {
                var generator = SplitMix64(seed: seed ^ (UInt64(epoch) &* 0xD1B5_4A32_D192_ED03))
                order = Array(0..<count)
                for i in stride(from: count - 1, to: 0, by: -1) {
                    order.swapAt(i, Int(generator.next() % UInt64(i + 1)))
                }
                position = 0
                epoch += 1
            }
            batch.append(order[position])
            position += 1
        }
        return batch
    }
}
