#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Everything besides the weights that a run needs to continue after step `step` exactly as
/// if it had not stopped: `state.json` in a checkpoint folder.
public struct CheckpointState: Codable, Sendable, Equatable {
    /// 2: Rademacher noise takes one bit per element (`Noise`); a version-1 state continues
    /// only a run with other noise.
    public static let currentVersion = 2

    public var version = CheckpointState.currentVersion
    /// Steps completed; the weights are those after this step (pending update applied).
    public var step: Int
    /// The run's options (schedule position = `step`; perturbation seeds derive from
    /// `options.seed` and the step).
    public var options: TrainingOptions
    /// The batch order's position: the sampler's epoch and place in it after `step` batches.
    public var sampler: BatchSampler.Position
    /// Steps so far whose loss was not finite.
    public var nonFiniteSteps: Int
    /// sha256 of the base model's files (`ModelFingerprint`).
    public var baseModelSHA256: String
    /// What the caller records about the run (model path, task, data file…); a resume
    /// must present the same values.
    public var run: [String: String]
    /// The first evaluation's metrics (before training), for the before/after summary.
    public var initialMetrics: [String: Double]

    public init(step: Int, options: TrainingOptions, sampler: BatchSampler.Position, nonFiniteSteps: Int, baseModelSHA256: String,
                run: [String: String], initialMetrics: [String: Double]) {
        self.step = step
        self.options = options
        self.sampler = sampler
        self.nonFiniteSteps = nonFiniteSteps
        self.baseModelSHA256 = baseModelSHA256
        self.run = run
        self.initialMetrics = initialMetrics
    }

    /// The state in `directory/state.json`.
    public static func load(directory: String) throws(CheckpointError) -> CheckpointState {
        let path = directory + "/" + Checkpoints.stateFile
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalid(path: directory, reason: "not a checkpoint (no readable \(Checkpoints.stateFile))")
        }
        let state: CheckpointState
        do {
            state = try JSONDecoder().decode(CheckpointState.self, from: data)
        } catch {
            throw .invalid(path: path, reason: "not a valid checkpoint state (\(error))")
        }
        if let problem = state.options.mezo.problem { throw .invalid(path: path, reason: "options: \(problem)") }
        if state.options.mezo.lowRank != nil, state.step > 0 {
            throw .invalid(path: path, reason: "a low-rank run after step \(state.step): low-rank runs start from step 0 only")
        }
        guard state.version == currentVersion || (state.version == 1 && state.options.mezo.perturbation != .rademacher) else {
            throw .invalid(path: path, reason: "checkpoint format version \(state.version), this build reads \(currentVersion)"
                           + (state.version == 1 ? " (and version 1 without Rademacher noise, whose stream changed)" : ""))
        }
        return state
    }

    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self))
    }

    /// Throws naming `path` unless a resume with `options`, `baseModelSHA256` and `run` may
    /// continue this state: the same base model and run, and options that differ at most in
    /// the number of steps and the evaluation interval.
    public func checkCompatible(options: TrainingOptions, baseModelSHA256: String, run: [String: String],
                                path: String) throws(CheckpointError) {
        guard baseModelSHA256 == self.baseModelSHA256 else {
            throw .mismatch(path: path, reason: "the checkpoint was trained from another base model (sha256 \(self.baseModelSHA256.prefix(12))…, "
                            + "this one is \(baseModelSHA256.prefix(12))…)")
        }
        for key in Set(run.keys).union(self.run.keys).sorted() where run[key] != self.run[key] {
            throw .mismatch(path: path, reason: "\(key) was '\(self.run[key] ?? "")' in the checkpoint, now '\(run[key] ?? "")'")
        }
        var comparable = options
        comparable.steps = self.options.steps
        comparable.evalEvery = self.options.evalEvery
        comparable.schedule.totalSteps = self.options.schedule.totalSteps
        guard comparable == self.options else {
            throw .mismatch(path: path, reason: "training options differ from the checkpoint's (\(self.options.summary)); "
                            + "only --steps and --eval-every may change on resume"
                            + (options.mezo.population != self.options.mezo.population
                               ? " (a run from before population ZO became the default resumes with --zo mezo)" : ""))
        }
        guard options.schedule.shape == .constant || options.steps == self.options.steps else {
            throw .mismatch(path: path, reason: "the \(options.schedule.shape.rawValue) schedule depends on --steps, which was \(self.options.steps)")
        }
    }
}

extension TrainingOptions {
    /// The options in one line for messages.
    var summary: String {
        "batch \(batchSize), lr \(schedule.base) \(schedule.shape.rawValue) warm-up \(schedule.warmupSteps), eps \(mezo.eps), "
            + "weight decay \(mezo.weightDecay), \(mezo.estimatorSummary), \(mezo.perturbation.rawValue), seed \(seed)"
    }
}
