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

    public init(steps: Int, batchSize: Int, schedule: LearningRateSchedule, mezo: MeZOOptions, seed: UInt64,
                evalEvery: Int = 0, maxNonFiniteSteps: Int = 10) {
        self.steps = steps
        self.batchSize = batchSize
        self.schedule = schedule
        self.mezo = mezo
        self.seed = seed
        self.evalEvery = evalEvery
        self.maxNonFiniteSteps = maxNonFiniteSteps
    }
}

/// What happened during training, in order.
public enum TrainingEvent: Sendable {
    case evaluation(step: Int, metrics: [String: Double])
    case step(MeZOStep, batch: [Int], seconds: Double)
}

/// Why training stopped early.
public enum TrainingError: Error, CustomStringConvertible {
    case tooManyNonFiniteSteps(Int)

    public var description: String {
        switch self {
        case .tooManyNonFiniteSteps(let count): "stopped: \(count) steps had a non-finite loss"
        }
    }
}

/// Runs MeZO on a task: seeded batches, the learning-rate schedule, evaluations (with the
/// pending update flushed first), and a final flush.
public final class Trainer {
    public let runner: any ModelRunner
    public let task: any TrainingTask
    public let options: TrainingOptions
    public let optimizer: MeZO

    public init(runner: any ModelRunner, task: any TrainingTask, options: TrainingOptions) {
        self.runner = runner
        self.task = task
        self.options = options
        optimizer = MeZO(runner: runner, options: options.mezo, seed: options.seed)
    }

    /// Trains for `options.steps` steps, reporting every event; returns the final metrics.
    /// `shouldStop` is polled between steps (Ctrl-C); the pending update is flushed either way.
    public func run(shouldStop: () -> Bool = { false }, report: (TrainingEvent) throws -> Void) throws -> [String: Double] {
        var sampler = BatchSampler(count: task.trainingCount, batchSize: options.batchSize, seed: options.seed)
        try report(.evaluation(step: 0, metrics: try task.evaluate(runner: runner)))
        var nonFinite = 0
        for step in 0..<options.steps where !shouldStop() {
            let batch = sampler.next()
            let start = monotonicSeconds()
            let result = try optimizer.step(lr: options.schedule.rate(at: step), loss: try task.lossPlan(batch, model: runner.model))
            try report(.step(result, batch: batch, seconds: monotonicSeconds() - start))
            if result.skipped {
                nonFinite += 1
                if nonFinite >= options.maxNonFiniteSteps {
                    try optimizer.flush()
                    throw TrainingError.tooManyNonFiniteSteps(nonFinite)
                }
            }
            if options.evalEvery > 0, (step + 1) % options.evalEvery == 0, step + 1 < options.steps {
                try optimizer.flush()
                try report(.evaluation(step: step + 1, metrics: try task.evaluate(runner: runner)))
            }
        }
        try optimizer.flush()
        let final = try task.evaluate(runner: runner)
        try report(.evaluation(step: optimizer.stepsTaken, metrics: final))
        return final
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

    public init(count: Int, batchSize: Int, seed: UInt64) {
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
    }

    public mutating func next() -> [Int] {
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
