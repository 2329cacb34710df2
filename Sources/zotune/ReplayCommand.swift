import ArgumentParser
import ZOCore
import ZOModels
import ZOOptimizers
import ZOTraining
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `zotune replay`: the fine-tuned weights from the base model and a trajectory.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rebuild fine-tuned weights from the base model and a run's trajectory (DIR/trajectory.zotraj), bit for bit.",
        discussion: """
            Runs the training's perturbation passes and updates again, without forward passes: the seeds come from the run's seed, \
            the learning rates from its schedule, the projected gradients from the file (4 bytes per step and perturbation).
            """
    )

    @Option(help: "The base model the run started from (folder, .gguf or asset id).") var base: String
    @Option(help: "The trajectory file.") var trajectory: String
    @Option(help: "Output folder for the rebuilt model (safetensors + config.json), or the adapter of a LoRA run (PEFT's format).") var output: String
    @Option(help: "Replay only the first N steps (default: all).") var steps: Int?

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        if let steps, steps < 0 { throw ValidationError("--steps must be ≥ 0") }
    }

    struct Report: Encodable {
        let steps: Int
        let trajectory_bytes: Int
        let seconds: Double
        let steps_per_s: Double
        let output: String
    }

    func run() throws {
        let started = monotonicSeconds()
        let log = try Trajectory(path: trajectory)
        let basePath = try ModelOptions(model: base).modelPath()
        let sha256 = try ModelFingerprint.sha256(path: basePath)
        guard sha256 == log.header.baseModelSHA256 else {
            throw CheckpointError.mismatch(path: trajectory, reason: "the run started from another base model (sha256 "
                                           + "\(log.header.baseModelSHA256.prefix(12))…, \(base) is \(sha256.prefix(12))…)")
        }
        if log.trailingBytes > 0 { print("note: \(log.trailingBytes) bytes after the last complete step are ignored") }
        if log.header.mezo.lora?.startsFromAdapter == true {
            throw CheckpointError.invalid(path: trajectory, reason: "the run trained an adapter it read from a file, which the "
                                          + "trajectory does not hold: replay needs runs that start from the base alone")
        }
        let model = try ModelRegistry.load(path: basePath, blockStorage: try compute.hostStorage())
        let runner = try compute.makeRunner(model: model, adapter: log.header.mezo.adapterFactory)
        let count = min(steps ?? log.steps, log.steps)
        let replayStart = monotonicSeconds()
        let progress = Progress(total: count)
        try log.replay(onto: runner, steps: count) { progress.step($0, loss: .nan, now: monotonicSeconds(), extra: "") }
        let seconds = monotonicSeconds() - replayStart
        if let lora = runner.adapter as? LoRAState {
            try lora.peftAdapter().write(to: output, baseModel: base)
        } else {
            try runner.copyParametersToHost()
            try model.save(to: output)
        }
        let bytes = try ReadOnlyFile(path: trajectory).byteCount
        try printJSONLine(Report(steps: count, trajectory_bytes: bytes, seconds: seconds,
                                 steps_per_s: Double(count) / max(seconds, 1e-9), output: output))
        print("wall time \(Int(monotonicSeconds() - started))s")
    }
}

extension ModelOptions {
    init(model: String) {
        self.init()
        self.model = model
    }
}
