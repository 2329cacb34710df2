import ArgumentParser
import ZOCore
import ZOModels
import ZOOptimizers
import ZOTasks
import ZOTraining
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `zotune bench checkpoint`: training steps without checkpoints and with asynchronous
/// checkpoints every N steps, side by side in one run.
struct BenchCheckpoint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Time training steps without saving and with --save-every N (asynchronous checkpoints), one run after the other; print JSON."
    )

    @OptionGroup var workload: BenchWorkload

    @Option(help: "Training steps per run.") var steps = 12
    @Option(name: .customLong("save-every"), help: "Checkpoint interval of the second run.") var saveEvery = 1
    @Option(help: "Folder for the checkpoints (emptied first; default: a new folder in the system's temporary directory).")
    var directory: String?

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard steps >= 2, saveEvery >= 1 else { throw ValidationError("--steps must be ≥ 2 and --save-every ≥ 1") }
    }

    struct Report: Encodable {
        let bench = "checkpoint"
        let mode: String
        let shape: String
        let backend: String
        let batch: Int
        let seq: Int
        let steps: Int
        /// Median and mean of the steps' own seconds (the first step excluded: warm-up).
        let seconds_per_step_median: Double
        let seconds_per_step_mean: Double
        /// From the first step to the end of the last save.
        let wall_seconds: Double
        let checkpoints_saved: Int
        let checkpoints_skipped: Int
        let checkpoint_bytes: Int
    }

    func run() throws {
        let (_, model, tokens) = try workload.makeModel(blockStorage: try compute.hostStorage())
        let sequences = (0..<tokens.batchSize).map { b in (0..<tokens.tokens).map { Int(tokens.ids[b * tokens.tokens + $0]) } }
        let task = LMTrainingTask(train: sequences, heldOut: nil)
        let folder = directory ?? FileManager.default.temporaryDirectory.path + "/zotune-bench-checkpoint-\(ProcessInfo.processInfo.processIdentifier)"
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: folder) } }
        try? FileManager.default.removeItem(atPath: folder)
        let plain = try measure(model: model, task: task, folder: nil)
        try printJSONLine(plain)
        let saving = try measure(model: model, task: task, folder: folder)
        try printJSONLine(saving)
        try printJSONLine(["saving_over_plain_seconds_per_step": saving.seconds_per_step_mean / plain.seconds_per_step_mean,
                           "saving_over_plain_wall_seconds": saving.wall_seconds / plain.wall_seconds])
    }

    func measure(model: any CausalLM, task: LMTrainingTask, folder: String?) throws -> Report {
        let backend = try compute.makeBackend()
        let runner = try compute.makeRunner(model: model, backend: backend)
        let options = TrainingOptions(steps: steps, batchSize: workload.batch, schedule: LearningRateSchedule(base: 1e-6, totalSteps: steps),
                                      mezo: MeZOOptions(eps: 1e-3), seed: 3)
        let policy = try folder.map {
            CheckpointPolicy(every: saveEvery, writer: try CheckpointWriter(model: model, checkpoints: Checkpoints(directory: $0), keep: 1),
                             continueOnError: false, baseModelSHA256: "bench", run: [:])
        }
        var seconds: [Double] = [], saved = 0, skipped = 0
        var first: Double?
        _ = try Trainer(runner: runner, task: task, options: options, checkpointing: policy).run { event in
            switch event {
            case .step(_, _, _, let duration):
                if first == nil { first = monotonicSeconds() - duration } else { seconds.append(duration) }
            case .checkpoint(_, .saved): saved += 1
            case .checkpoint(_, .skipped): skipped += 1
            default: break
            }
        }
        let wall = monotonicSeconds() - (first ?? monotonicSeconds())
        let sorted = seconds.sorted()
        return Report(mode: folder == nil ? "no checkpoints" : "checkpoint every \(saveEvery) steps", shape: workload.shape,
                      backend: backend.name, batch: workload.batch, seq: workload.seq, steps: steps,
                      seconds_per_step_median: sorted[sorted.count / 2], seconds_per_step_mean: seconds.reduce(0, +) / Double(seconds.count),
                      wall_seconds: wall, checkpoints_saved: saved, checkpoints_skipped: skipped,
                      checkpoint_bytes: model.groups.reduce(0) { $0 + $1.layout.byteCount })
    }
}
