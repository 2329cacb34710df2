import ArgumentParser
import ZOCore
import ZOCPU
import ZOFormats
import ZOModels
import ZOOffload
import ZOOptimizers
import ZOTasks
import ZOTokenizers
import ZOTraining
import ZOAssets
import ZODistributed
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Fine-tune a model with zeroth-order SGD: forward passes only (N + 1 per step by default), nothing stored for backpropagation.",
        discussion: """
            Writes DIR/metrics.jsonl (one line per step and per evaluation; with --report-to tensorboard, or both, \
            TensorBoard event files in DIR/runs holding the same numbers), DIR/trajectory.zotraj (one coefficient per \
            direction and step: `zotune replay` rebuilds the weights from it and the base model) and the final model as \
            DIR/model (safetensors + config.json + the tokenizer, so that DIR alone runs: `--model DIR`; a LoRA run writes \
            its adapter to DIR/adapter in PEFT's format, and DIR/model with --merge). With --save-every N, checkpoints go to DIR/checkpoints/step-N, written in \
            the background; --resume DIR continues from the newest one bit for bit.

            Defaults for --steps and --lr (measured on SmolLM2-135M, see README): with the default population estimator, \
            sentiment \(TaskDefaults(task: "sentiment", estimator: .population).steps) steps at lr \
            \(TaskDefaults(task: "sentiment", estimator: .population).lr), other tasks \
            \(TaskDefaults(task: "", estimator: .population).steps) at \(TaskDefaults(task: "", estimator: .population).lr); \
            with --zo mezo, sentiment \(TaskDefaults(task: "sentiment", estimator: .mezo).steps) at \
            \(TaskDefaults(task: "sentiment", estimator: .mezo).lr), other tasks \(TaskDefaults(task: "", estimator: .mezo).steps) \
            at \(TaskDefaults(task: "", estimator: .mezo).lr). A LoRA run's learning rates are larger: \
            \(TaskDefaults(task: "sentiment", estimator: .population, lora: true).lr) (population) and \
            \(TaskDefaults(task: "sentiment", estimator: .mezo, lora: true).lr) (MeZO) on sentiment, others scaled alike.
            """
    )

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var taskOptions: TaskOptions

    @Option(help: "Steps (default: the task's, see below).") var steps: Int?
    @Option(name: .customLong("batch-size"), help: "Training examples per step.") var batchSize = 16
    @Option(help: "Learning rate (default: the task's, see below).") var lr: Float?
    @Option(help: "Perturbation scale ε (default 1e-3; 1e-2 with --lora or --adapter, as MeZO's LoRA runs).") var eps: Float?
    @Option(name: .customLong("weight-decay"), help: "Decoupled weight decay (not on biases and norms).") var weightDecay: Float = 0
    @Option(help: "constant, linear or cosine.") var schedule = LearningRateSchedule.Shape.constant
    @Option(help: "Warm-up steps.") var warmup = 0
    @Option(help: "MeZO's perturbations per step (averaged).") var q = 1
    @Option(help: "gaussian, rademacher or ones (default: rademacher for a full-rank population, else gaussian).")
    var perturbation: PerturbationKind?
    @Option(help: "Seed of perturbations and batch order.") var seed: UInt64 = 0
    @Option(name: .customLong("eval-every"), help: "Evaluate every N steps (0: before and after only).") var evalEvery = 0
    @Option(name: .customLong("max-nonfinite"), help: "Stop after this many steps with a non-finite loss.") var maxNonFinite = 10
    @Option(help: "Output folder.") var output: String?
    @Option(name: .customLong("report-to"), help: "Where metrics go: jsonl (OUTPUT/metrics.jsonl), tensorboard (OUTPUT/runs/), or both: jsonl,tensorboard.")
    var reportTo = "jsonl"
    @Option(name: .customLong("output-gguf"), help: "Also write the fine-tuned model as a GGUF file for llama.cpp.")
    var outputGGUF: String?
    @Option(name: .customLong("gguf-type"), help: "The GGUF's weight matrices: f32, f16, bf16, q8_0 or q4_0.")
    var ggufType = GGUFFileType.f16
    @Option(name: .customLong("save-every"), help: "Save a checkpoint every N steps and after the last, in the background (needs --output; 0: none).")
    var saveEvery = 0
    @Option(help: "Checkpoints kept (the newest).") var keep = 2
    @Option(name: .customLong("on-save-error"), help: "When a checkpoint cannot be written: stop, or continue training without it.")
    var onSaveError = SaveErrorPolicy.stop
    @Option(help: "Continue a run from a checkpoint folder, or from a run's output folder (its newest checkpoint); the options must be the run's.")
    var resume: String?

    @OptionGroup var hybrid: HybridOptions

    @OptionGroup var loraArguments: LoRAArguments

    @OptionGroup var compute: ComputeOptions

    @OptionGroup var parallelOptions: ParallelOptions

    /// --report-to as targets.
    var reportTargets: Set<ReportTarget> { Set(reportTo.split(separator: ",").compactMap { ReportTarget(rawValue: String($0)) }) }

    func validate() throws {
        try taskOptions.validateForTraining()
        guard reportTo.split(separator: ",").allSatisfy({ ReportTarget(rawValue: String($0)) != nil }), !reportTargets.isEmpty else {
            throw ValidationError("--report-to \(reportTo): a comma-separated list of jsonl and tensorboard")
        }
        guard (steps ?? 0) >= 0, batchSize >= 1, q >= 1, warmup >= 0, evalEvery >= 0, maxNonFinite >= 1 else {
            throw ValidationError("--steps, --batch-size, --q, --warmup, --eval-every and --max-nonfinite must be positive")
        }
        guard (lr ?? 0) >= 0, (eps ?? 1) > 0, weightDecay >= 0 else { throw ValidationError("--lr and --weight-decay must be ≥ 0 and --eps > 0") }
        guard saveEvery >= 0, keep >= 1 else { throw ValidationError("--save-every must be ≥ 0 and --keep ≥ 1") }
        if saveEvery > 0, output == nil, resume == nil { throw ValidationError("--save-every needs --output (checkpoints go to OUTPUT/checkpoints)") }
        try hybrid.validate()
        if hybrid.isFirstOrder || hybrid.lowRank != nil, saveEvery > 0 || resume != nil {
            throw ValidationError("--save-every and --resume do not support --fo-blocks or low-rank ZO (--zo low-rank, --rank) yet "
                                  + "(the final model is saved with --output)")
        }
        if compute.decodeByTensor, hybrid.lowRank != nil {
            throw ValidationError("--decode-by-tensor does not combine with --zo low-rank or --rank (whose factors leave streamed blocks "
                                  + "untouched anyway)")
        }
        if hybrid.lowRank != nil, weightDecay != 0 || (perturbation ?? .gaussian) != .gaussian {
            throw ValidationError("low-rank ZO draws Gaussian factors and applies no weight decay; drop --weight-decay and --perturbation")
        }
        if q != 1, hybrid.population != nil { throw ValidationError("--q is MeZO's; a population takes --queries (or add --zo mezo)") }
        try validateLoRA()
    }

    /// What a LoRA run does not combine with.
    private func validateLoRA() throws {
        guard loraArguments.isLoRA else { return }
        if hybrid.lowRank != nil { throw ValidationError("a LoRA run has no low-rank estimator: drop --zo low-rank and --rank") }
        if compute.decodeByTensor { throw ValidationError("--decode-by-tensor does not combine with LoRA (the base is never written)") }
        if loraArguments.merge, output == nil, resume == nil { throw ValidationError("--merge writes OUTPUT/model: add --output") }
    }

    /// --eps, or the default: 1e-2 for a LoRA run, 1e-3 otherwise.
    var perturbationScale: Float { eps ?? (loraArguments.isLoRA ? 1e-2 : 1e-3) }

    /// --perturbation, or the estimator's default: Rademacher for a full-rank population (cheaper to
    /// draw, and FZOO's choice), Gaussian otherwise.
    var perturbationKind: PerturbationKind {
        perturbation ?? (hybrid.population != nil && hybrid.lowRank == nil ? .rademacher : .gaussian)
    }

    struct StepLine: Encodable {
        let step: Int
        let loss_plus: Double
        let loss_minus: Double
        let projected_grad: Double
        /// Forward passes of the batch this step made (the estimator's streams).
        let forwards: Int
        let lr: Float
        let seeds: [UInt64]
        /// Indices of the training examples in this step's batch.
        let batch: [Int]
        let skipped: Bool
        let seconds: Double
        /// (loss_plus + loss_minus) / 2, the loss the progress line shows.
        let loss: Double
        /// The standard deviation of a population's coefficients (absent for one coefficient).
        let grad_spread: Double?
        /// Tokens in one forward pass of the batch.
        let tokens: Int
        /// What the machine did: these differ between runs of the same training (offloaded or not, faster or slower).
        let system: SystemLine
    }

    struct ExchangeLine: Encodable {
        /// Bytes this rank sent to and received from the other ranks during the step, and the
        /// seconds the exchange of losses took (waiting for the slowest rank included).
        let sent: Int
        let received: Int
        let seconds: Double
    }

    struct SystemLine: Encodable {
        /// Batch tokens per second of the step.
        let tokens_per_s: Double
        /// The device arena's high-water mark since the run started.
        let device_high_water_bytes: Int
        /// Host ↔ device bytes the offloader moved during the step (offloaded runs).
        let link_bytes_up: Int?
        let link_bytes_down: Int?
        /// Under mpirun or srun: what rank 0 exchanged with the others during the step.
        let exchange: ExchangeLine?
    }

    struct EvalLine: Encodable {
        let step: Int
        let eval: [String: Double]
    }

    func run() throws {
        ignoreFileSizeSignal()
        guard let launch = try parallelOptions.launch() else { return try train(launch: nil) }
        launch.silenceUnlessWriter()
        launch.run { try train(launch: launch) }
    }

    /// The run, alone or as one rank of a launch (rank 0 writes everything, the others nothing).
    func train(launch: DistributedLaunch?) throws {
        let isWriter = (launch?.rank ?? 0) == 0
        let defaults = TaskDefaults(task: taskOptions.task, estimator: hybrid.zo, lora: loraArguments.isLoRA)
        let resumed = try resume.map(ResumePoint.init(path:))
        let (steps, lr) = (self.steps ?? resumed?.state.options.steps ?? defaults.steps, self.lr ?? defaults.lr)
        if self.steps == nil || self.lr == nil {
            print("note: \(steps) steps at lr \(lr) (the \(taskOptions.task) defaults for \(hybrid.zo.rawValue)"
                  + "\(loraArguments.isLoRA ? " with LoRA" : ""))")
        }
        let started = monotonicSeconds()
        let output = isWriter ? self.output ?? resumed?.runDirectory : nil
        let outputGGUF = isWriter ? self.outputGGUF : nil
        let modelPath = try modelOptions.modelPath()
        let baseSHA256 = output == nil ? "" : try ModelFingerprint.sha256(path: modelPath)
        let lora = try loraArguments.options(seed: seed)
        let options = TrainingOptions(steps: steps, batchSize: batchSize,
                                      schedule: LearningRateSchedule(base: lr, shape: schedule, warmupSteps: warmup, totalSteps: steps),
                                      mezo: MeZOOptions(eps: perturbationScale, weightDecay: weightDecay, q: q, perturbation: perturbationKind,
                                                        lowRank: hybrid.lowRank, population: hybrid.population, lora: lora?.options),
                                      seed: seed, evalEvery: evalEvery, maxNonFiniteSteps: maxNonFinite,
                                      firstOrder: try hybrid.firstOrderOptions())
        var run = ["task": taskOptions.task, "data": taskOptions.data ?? "", "eval-data": taskOptions.evalData ?? "",
                   "tokenizer": modelOptions.tokenizer ?? ""]
        if taskOptions.task == "sft" {
            run["loss-on"] = taskOptions.sft.lossOn
            run["max-length"] = taskOptions.sft.maxLength.map(String.init) ?? ""
        }
        if isWriter {  // the other ranks start from the same state: the replica check compares their weights
            try resumed?.state.checkCompatible(options: options, baseModelSHA256: baseSHA256, run: run, path: resumed!.directory)
        }
        // A resumed run loads the checkpoint's weights (a LoRA run's: its adapter, onto the base); the base model names the
        // architecture and tokenizer.
        let model = try ModelRegistry.load(path: lora == nil ? resumed?.directory ?? modelPath : modelPath,
                                           blockStorage: try compute.hostStorage())
        if let resumed { print("resuming after step \(resumed.state.step) from \(resumed.directory)") }
        if outputGGUF != nil { _ = try GGUFExport.exportable(model) }  // refused before training, not after
        let generations = output.map { $0 + "/generations.jsonl" }
        if resumed == nil, let generations { try? FileManager.default.removeItem(atPath: generations) }
        let (task, notes) = try taskOptions.makeTask(model: model, modelOptions: modelOptions, generationsPath: generations)
        notes.forEach { print("note: \($0)") }
        let backend = try compute.makeBackend(threads: launch?.threads(compute.threads), gpu: launch?.environment.localRank ?? 0)
        let tail = try options.firstOrder.map {
            try FirstOrderTail(model: model, backend: backend, firstBlock: model.blocks.count - $0.blocks(of: model.blocks.count), trainsEmbedding: $0.embedding)
        }
        let runner = try compute.makeRunner(model: model, backend: backend, tail: tail, adapter: options.mezo.adapterFactory)
        if let loraState = runner.adapter as? LoRAState {
            let start = try resumed.map { try PEFTAdapter(directory: $0.directory + "/" + Checkpoints.adapterFolder) } ?? lora?.start
            if let start { try loraState.load(start) }
            let alpha = loraState.options.alpha
            print("LoRA: r \(loraState.options.rank), α \(alpha == alpha.rounded() ? String(Int(alpha)) : String(alpha)) on "
                  + "\(loraState.adaptedWeights.count) weights (\(loraState.parameterCount) parameters"
                  + "\(start.map { ", from \($0.directory)" } ?? "")); the model stays frozen")
        }
        let firstOrder = try options.firstOrder.map { try FirstOrderOptimizer(tail: tail!, rule: $0.rule, placement: $0.statePlacement) }
        if let firstOrder { print("first-order: \(hybrid.describe(tail: firstOrder.tail, lora: loraArguments.isLoRA))") }
        if let output {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try writeRunSettings(to: output + "/run.json", steps: steps, lr: lr, estimator: options.mezo.estimatorSummary)
        }
        let metrics = try output.map { try RunLog(directory: $0, targets: reportTargets, resumingAfter: resumed?.state.step) }
        // The trajectory replays ZO updates only; a run with a first-order part writes none.
        let trajectory = try options.firstOrder != nil ? nil : output.map {
            try TrajectoryLog(path: $0 + "/trajectory.zotraj", header: TrajectoryHeader(seed: seed, mezo: options.mezo, schedule: options.schedule,
                                                                                        baseModelSHA256: baseSHA256),
                              resumingAfter: resumed?.state.step)
        }
        let checkpointing = try output.flatMap { output in
            try saveEvery == 0 ? nil : CheckpointPolicy(
                every: saveEvery,
                writer: lora == nil
                    ? CheckpointWriter(model: model, checkpoints: Checkpoints(directory: output + "/checkpoints"), keep: keep,
                                       storage: try compute.hostStorage())
                    : CheckpointWriter(adaptersOf: model, baseModel: modelOptions.model,
                                       checkpoints: Checkpoints(directory: output + "/checkpoints"), keep: keep),
                continueOnError: onSaveError == .continue, baseModelSHA256: baseSHA256, run: run)
        }
        let group = try launch.map { launch in
            // A batch holds at most every training example (the sampler's rule).
            let group = try parallelOptions.group(launch, batchSize: min(batchSize, task.trainingCount),
                                                  streams: options.firstOrder?.zeroOrder == false ? 1 : options.mezo.streams)
            group.stopSignal = { interrupted.load(ordering: .relaxed) }
            try group.agree(on: try agreedFacts(options: options, modelPath: modelPath, layout: group.layout))
            print("parallel: \(group.layout) (\(launch.environment.launcher)), \(backend.name) each; replicas compared every "
                  + "\(parallelOptions.verifyEvery) steps")
            return group
        }
        let trainer = Trainer(runner: runner, task: task, options: options, checkpointing: checkpointing, trajectory: trajectory,
                              resume: resumed?.state, firstOrder: firstOrder, group: group)
        let progress = Progress(total: steps)
        installInterruptHandler()
        var first = resumed?.state.initialMetrics
        var (trainingSeconds, stepsRun) = (0.0, 0)
        let forwards = options.firstOrder?.zeroOrder == false ? 1 : options.mezo.streams
        let offloader = runner as? OffloadedRunner
        var linkBytes = (up: 0, down: 0), exchanged = (sent: 0, received: 0, seconds: 0.0)
        func refreshLinkBaseline() {
            if let offloader { linkBytes = (offloader.statistics.bytesUploaded, offloader.statistics.bytesDownloaded) }
        }
        /// The step's system numbers; link bytes as the difference of the offloader's running totals.
        func system(tokens: Int, seconds: Double) -> SystemLine {
            let moved = offloader.map { ($0.statistics.bytesUploaded, $0.statistics.bytesDownloaded) }
            let exchange = group.map {
                ExchangeLine(sent: $0.bytesSent - exchanged.sent, received: $0.bytesReceived - exchanged.received,
                             seconds: $0.exchangeSeconds - exchanged.seconds)
            }
            defer {
                if let moved { linkBytes = moved }
                if let group { exchanged = (group.bytesSent, group.bytesReceived, group.exchangeSeconds) }
            }
            return SystemLine(tokens_per_s: Double(tokens) / max(seconds, 1e-9), device_high_water_bytes: backend.arena.stats.highWater,
                              link_bytes_up: moved.map { $0.0 - linkBytes.up }, link_bytes_down: moved.map { $0.1 - linkBytes.down },
                              exchange: exchange)
        }
        let final = try trainer.run(shouldStop: { group?.stopRequested ?? interrupted.load(ordering: .relaxed) }) { event in
            switch event {
            case .step(let step, let batch, let tokens, let seconds):
                (trainingSeconds, stepsRun) = (trainingSeconds + seconds, stepsRun + 1)
                progress.step(step.step + 1, loss: (step.lossPlus + step.lossMinus) / 2, now: monotonicSeconds(),
                              extra: "g \(format(step.projectedGradient))" + (step.skipped ? "  (skipped: non-finite loss)" : ""))
                try metrics?.write(StepLine(step: step.step + 1, loss_plus: step.lossPlus, loss_minus: step.lossMinus,
                                            projected_grad: step.projectedGradient, forwards: forwards,
                                            lr: step.learningRate, seeds: step.seeds,
                                            batch: batch, skipped: step.skipped, seconds: seconds,
                                            loss: (step.lossPlus + step.lossMinus) / 2, grad_spread: spread(step.projectedGradients),
                                            tokens: tokens, system: system(tokens: tokens, seconds: seconds)))
                launch?.injectFault(afterStep: step.step + 1)
            case .evaluation(let step, let values):
                refreshLinkBaseline()  // an evaluation's traffic is not the next step's
                guard !values.isEmpty else { return }
                if first == nil { first = values }
                progress.message("eval at step \(step): " + values.sorted { $0.key < $1.key }.map { "\($0.key) \(format($0.value))" }.joined(separator: ", "))
                try metrics?.write(EvalLine(step: step, eval: values))
            case .checkpoint(let step, let outcome):
                try metrics?.write(CheckpointLine(step: step, outcome))
                switch outcome {
                case .saved(let path): progress.message("checkpoint after step \(step): \(path)")
                case .skipped: progress.message("checkpoint after step \(step) skipped: the previous one was still being written")
                case .failed(let why): progress.message("checkpoint after step \(step) failed, training goes on: \(why)")
                }
            }
        }
        if interrupted.load(ordering: .relaxed) {
            progress.message("interrupted after step \(trainer.stepsTaken); the last update is applied")
        }
        if output == nil, outputGGUF == nil { print("the model was not saved (pass --output DIR to keep it)") }
        let tokenizerSource = try Assets().resolve(modelOptions.tokenizer ?? modelPath)
        if let loraState = runner.adapter as? LoRAState {
            let adapter = try loraState.peftAdapter()
            if let output { try adapter.write(to: output + "/" + Checkpoints.adapterFolder, baseModel: modelOptions.model) }
            if (loraArguments.merge && output != nil) || outputGGUF != nil { try adapter.merge(into: model) }
        } else if output != nil || outputGGUF != nil {
            try runner.copyParametersToHost()
        }
        if let output, !loraArguments.isLoRA || loraArguments.merge {
            try model.save(to: output + "/model")
            try TokenizerFiles.keep(tokenizerAt: tokenizerSource, in: output + "/model")
        }
        if let outputGGUF {
            let savedModel = loraArguments.isLoRA && !loraArguments.merge ? nil : output.map { $0 + "/model" }
            try exportGGUF(model, tokenizer: savedModel ?? tokenizerSource, type: ggufType,
                           name: output.map(displayName) ?? displayName(modelPath) + "-zotune", to: outputGGUF)
        }
        if let first {
            for name in final.keys.sorted() where first[name] != nil {
                print("\(name): \(format(first[name]!)) before, \(format(final[name]!)) after \(trainer.stepsTaken) steps" +
                      " (\(final[name]! - first[name]! >= 0 ? "+" : "")\(format(final[name]! - first[name]!)))")
            }
        }
        if stepsRun > 0 {
            print("training: \(stepsRun) steps in \(Int(trainingSeconds.rounded())) s, \(format(Double(stepsRun) / trainingSeconds)) steps/s, "
                  + "\(format(Double(stepsRun * forwards) / trainingSeconds)) forward passes of the batch/s (evaluations excluded)")
        }
        let seconds = Int(monotonicSeconds() - started)
        print("wall time \(seconds / 60)m\(seconds % 60)s (loading, evaluations and saving included)")
        if let output, reportTargets.contains(.jsonl) {
            try HTMLReport(runs: [try RunHistory(directory: output)]).write(to: output + "/report.html")
        }
        printWhereTheResultsAre(output: output, gguf: outputGGUF)
    }
}

/// What to do when a checkpoint cannot be written.
enum SaveErrorPolicy: String, ExpressibleByArgument {
    case stop, `continue`
}

/// A metrics line for a checkpoint that fell due.
struct CheckpointLine: Encodable {
    let step: Int
    let checkpoint: String
    let path: String?
    let error: String?

    init(step: Int, _ outcome: CheckpointOutcome) {
        self.step = step
        switch outcome {
        case .saved(let path): (checkpoint, self.path, error) = ("saved", path, nil)
        case .skipped: (checkpoint, path, error) = ("skipped", nil, nil)
        case .failed(let why): (checkpoint, path, error) = ("failed", nil, why)
        }
    }
}

/// `--resume PATH`: a checkpoint folder, or a run folder whose newest checkpoint is taken.
struct ResumePoint {
    let directory: String
    let state: CheckpointState
    /// The run's output folder (the checkpoint folder's grandparent).
    let runDirectory: String

    init(path: String) throws {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        if FileManager.default.fileExists(atPath: trimmed + "/" + Checkpoints.stateFile) {
            directory = trimmed
        } else if let latest = Checkpoints(directory: trimmed + "/checkpoints").latest {
            directory = latest
        } else {
            throw CheckpointError.invalid(path: path, reason: "no checkpoint here (neither a state.json nor a checkpoints/ folder with one)")
        }
        state = try CheckpointState.load(directory: directory)
        runDirectory = URL(fileURLWithPath: directory).deletingLastPathComponent().deletingLastPathComponent().path
    }
}

/// Steps and learning rate used when `--steps` / `--lr` are not given, per task and estimator.
struct TaskDefaults {
    let steps: Int
    let lr: Float

    init(steps: Int, lr: Float) {
        self.steps = steps
        self.lr = lr
    }

    /// Found by measuring SmolLM2-135M on the built-in sentiment task (bench/results/sentiment/ for
    /// MeZO, bench/results/population-20261129/ for a population); other tasks get settings for a
    /// first run measured on the `lm` task (a population's loss there stopped improving after
    /// about 20 steps at lr 1e-3 and rose at 2e-3). A population (N + 1 forwards a step) takes
    /// fewer steps of a larger lr: its step is normalized by the losses' spread.
    /// A LoRA run (B starting at zero, a step moving the weights through B·A) takes 5× the
    /// population's rate and 30× MeZO's (100× for other tasks' 1e-5): measured on sentiment (bench/results/lora-20261130/:
    /// the population at 1e-2 reached full training's accuracy, at 2e-2 it peaked early and
    /// fell back; MeZO at 1e-2 diverged, at 3e-3 it peaked at 68% and fell back, at 1e-3 it
    /// learned slowly).
    init(task: String, estimator: HybridOptions.ZeroOrderChoice, lora: Bool = false) {
        switch (task == "sentiment", estimator == .population) {
        case (true, true): self.init(steps: 90, lr: lora ? 1e-2 : 2e-3)
        case (false, true): self.init(steps: 20, lr: lora ? 5e-3 : 1e-3)
        case (true, false): self.init(steps: 200, lr: lora ? 1e-3 : 3e-5)
        case (false, false): self.init(steps: 100, lr: lora ? 1e-3 : 1e-5)
        }
    }
}

extension LearningRateSchedule.Shape: ExpressibleByArgument {}
extension PerturbationKind: ExpressibleByArgument {}

/// A number with 4 significant decimals for progress lines.
func format(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    let magnitude = abs(value)
    let decimals = magnitude >= 100 ? 1 : magnitude >= 1 ? 4 : 6
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return "\(rounded)"
}

extension TrainCommand {
    /// The run's closing lines: where the model and its logs are, and how to talk to it.
    func printWhereTheResultsAre(output: String?, gguf: String?) {
        if let output {
            if loraArguments.isLoRA {
                print("LoRA adapter: \(output)/adapter (PEFT's format; `zotune generate --model \(modelOptions.model) --adapter "
                      + "\(output)/adapter`, or peft's PeftModel.from_pretrained)")
            }
            if !loraArguments.isLoRA || loraArguments.merge { print("model: \(output)/model (safetensors, config.json, tokenizer)") }
            if reportTargets.contains(.jsonl) {
                print("metrics: \(output)/metrics.jsonl; report: \(output)/report.html (`zotune report \(output)` adds a PNG)")
            }
            if reportTargets.contains(.tensorboard) { print("TensorBoard logs: \(output)/runs (tensorboard --logdir \(output)/runs)") }
        }
        if let gguf { print("GGUF for llama.cpp: \(gguf) (\(ggufType.rawValue))") }
        guard let target = (loraArguments.isLoRA && !loraArguments.merge ? nil : output) ?? gguf else { return }
        print("try it: scripts/zotune generate --model \(target) --prompt \"...\" (add --chat for an instruct model)")
        if let gguf { print("   or in llama.cpp: llama-cli -m \(gguf) -cnv") }
    }
}

/// The standard deviation of `values` (nil for fewer than two).
func spread(_ values: [Double]) -> Double? {
    guard values.count > 1 else { return nil }
    let mean = values.reduce(0, +) / Double(values.count)
    return (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
}

extension TrainCommand {
    /// run.json: the settings a report shows beside the run's metrics (and the command line).
    func writeRunSettings(to path: String, steps: Int, lr: Float, estimator: String) throws {
        let settings = ["model": modelOptions.model, "task": taskOptions.task, "data": taskOptions.data ?? "(built in)",
                        "steps": String(steps), "lr": String(lr), "batch_size": String(batchSize), "seed": String(seed),
                        "eps": String(perturbationScale), "schedule": schedule.rawValue, "estimator": estimator,
                        "offload": compute.offload ? "yes (\(compute.offloadFormat.rawValue))" : "no",
                        "command": CommandLine.arguments.dropFirst().joined(separator: " ")]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let file = try AtomicFileWriter(path: path)
        try file.write(Array(try encoder.encode(settings)))
        try file.commit()
    }
}

