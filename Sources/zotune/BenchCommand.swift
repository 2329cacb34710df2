import ArgumentParser
import ZOCPU
import ZOCore
import ZOModels
import ZOOffload
import ZOOptimizers
#if canImport(Glibc)
import Glibc
#endif

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure speed and memory on named model shapes with random weights.",
        subcommands: [BenchForward.self, BenchZOStep.self, BenchPerturb.self, BenchRounding.self, BenchCheckpoint.self]
    )
}

/// A named shape with random weights and a batch of random tokens.
struct BenchWorkload: ParsableArguments {
    @Option(help: "A named shape: \(NamedShape.all.map(\.name).joined(separator: ", ")).")
    var shape = "opt-125m"

    @Option(help: "Sequences per batch (B).")
    var batch = 4

    @Option(help: "Tokens per sequence (T).")
    var seq = 128

    @Option(help: "Keep only the shape's first N blocks (hidden size unchanged): a model too large for host memory, truncated.")
    var layers: Int?

    func validate() throws {
        guard batch >= 1, seq >= 1 else { throw ValidationError("--batch and --seq must be positive") }
        if let layers, layers < 1 { throw ValidationError("--layers must be at least 1") }
    }

    /// The model (seeded random weights), resident on a CPU backend, and the token batch.
    func make(threads: Int?) throws -> (NamedShape, any CausalLM, CPUBackend, ResidentRunner, TokenBatch) {
        let (shape, model, batch) = try makeModel()
        let backend = try CPUBackend(threads: threads)
        return (shape, model, backend, try ResidentRunner(model: model, backend: backend), batch)
    }

    /// The model (seeded random weights, blocks in `blockStorage`) and the token batch.
    func makeModel(blockStorage: HostStorage = .memory) throws -> (NamedShape, any CausalLM, TokenBatch) {
        let named = try namedShape(shape, seq: seq, layers: layers)
        let model = try named.makeModel(blockStorage: blockStorage)
        model.initializeRandomly(seed: 1)
        var generator = SplitMix64(seed: 7)
        let sequences = (0..<batch).map { _ in (0..<seq).map { _ in Int(generator.next() % UInt64(named.vocabSize)) } }
        return (named, model, try model.makeBatch(sequences))
    }
}

struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Time the resident forward pass (logits and loss) and print JSON."
    )

    @OptionGroup var workload: BenchWorkload

    @Option(help: "Timed forward passes (after one warm-up pass).")
    var iterations = 5

    @OptionGroup var compute: ComputeOptions

    func validate() throws {
        guard iterations >= 1 else { throw ValidationError("--iterations must be positive") }
        if compute.offload { throw ValidationError("bench forward measures the resident pass; use bench zo-step --offload") }
    }

    struct Report: Encodable {
        let bench = "forward"
        let shape: String
        let backend: String
        let threads: Int
        let batch: Int
        let seq: Int
        let parameters: Int
        let iterations: Int
        let seconds_median: Double
        let seconds_min: Double
        let tokens_per_s: Double
        let gflop_per_forward: Double
        let effective_gflops: Double
        let loss: Double
        /// Seconds per forward spent in each backend operation (median-run average).
        let seconds_by_op: [String: Double]
        /// sgemm's own rate: the matrix FLOPs over the time in "gemm".
        let gemm_gflops: Double
    }

    func run() throws {
        let (named, model, backend, runner, tokens) = try workload.make(threads: compute.threads)
        let (shape, batch, seq) = (workload.shape, workload.batch, workload.seq)
        var loss = try runner.forward(tokens).meanLoss  // warm-up
        backend.profile.isEnabled = true
        let times = try timed(iterations) { loss = try runner.forward(tokens).meanLoss }
        let median = times.median
        let profile = backend.profile.take().mapValues { $0.seconds / Double(iterations) }
        let flops = named.shape.forwardFLOPs(batch: batch, seq: seq)
        try printJSONLine(Report(shape: shape, backend: backend.name, threads: backend.threads, batch: batch, seq: seq,
                                 parameters: model.parameterCount, iterations: iterations,
                                 seconds_median: median, seconds_min: times.min,
                                 tokens_per_s: Double(batch * seq) / median, gflop_per_forward: flops.total / 1e9,
                                 effective_gflops: flops.total / median / 1e9, loss: loss, seconds_by_op: profile,
                                 gemm_gflops: flops.matrices / (profile["gemm"] ?? .nan) / 1e9))
    }
}

/// The named shape `name`, checking that `seq` tokens fit its positions; with `layers`, only
/// its first `layers` blocks.
func namedShape(_ name: String, seq: Int, layers: Int? = nil) throws -> NamedShape {
    let named = try NamedShape.named(name)
    guard seq <= named.maxPositions else {
        throw ValidationError("--seq \(seq) exceeds the shape's \(named.maxPositions) positions")
    }
    guard let layers else { return named }
    guard layers <= named.layers else { throw ValidationError("--layers \(layers): \(name) has \(named.layers) blocks") }
    return named.truncated(to: layers)
}

struct BenchPerturb: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perturb",
        abstract: "Time one perturbation pass (θ += c·z, z regenerated) over a parameter buffer and print JSON."
    )

    @Option(help: "Parameters in the buffer.")
    var elements = 100_000_000

    @Option(help: "Directions z per pass (1 for pass B, 2 for a fused restore/update + perturb pass).")
    var terms = 1

    @Option(help: "gaussian, rademacher or ones.")
    var perturbation = PerturbationKind.gaussian

    @Option(help: "Timed passes.")
    var iterations = 3

    @OptionGroup var compute: ComputeOptions

    struct Report: Encodable {
        let bench = "perturb"
        let backend: String
        let elements: Int
        let terms: Int
        let perturbation: String
        let seconds_median: Double
        let nanoseconds_per_element: Double
        let gigabytes_per_s: Double
    }

    func run() throws {
        let backend = try CPUBackend(budget: elements * 4 + (1 << 20), threads: compute.threads)
        let buffer = try backend.allocate(elements * 4, label: "parameters")
        let tensors = [PerturbedTensor(offset: 0, count: elements, id: 0, decays: true)]
        let termList = (0..<terms).map { PerturbationTerm(seed: UInt64($0) &+ 1, coefficient: 1e-3) }
        backend.perturb(buffer, tensors: tensors, terms: termList, decayFactor: 1, kind: perturbation)  // touch the pages
        let median = timed(iterations) {
            backend.perturb(buffer, tensors: tensors, terms: termList, decayFactor: 1, kind: perturbation)
        }.median
        try printJSONLine(Report(backend: backend.name, elements: elements, terms: terms, perturbation: perturbation.rawValue,
                                 seconds_median: median, nanoseconds_per_element: median / Double(elements) * 1e9,
                                 gigabytes_per_s: Double(elements * 8) / median / 1e9))
    }
}

extension BenchZOStep {
    /// The memory model's prediction for the step `measure` runs.
    func predictedStep(_ shape: ModelShape, plan: ResidencyPlan?, options: MeZOOptions) -> StepMemory {
        let (b, t, streams) = (workload.batch, workload.seq, options.streams)
        guard let lowRank = options.lowRank else {
            return plan.map { MemoryModel.offloadedStep(shape, plan: $0, batch: b, tokens: t, streams: streams) }
                ?? MemoryModel.residentStep(shape, batch: b, tokens: t)
        }
        if lowRank.lowRankOnly, stack {
            return MemoryModel.stackedLowRankStep(shape, plan: plan, batch: b, tokens: t, rank: lowRank.rank,
                                                  resampleEvery: lowRank.resampleEvery, streams: streams)
        }
        let base = plan.map { MemoryModel.offloadedStep(shape, plan: $0, batch: b, tokens: t, streams: streams) }
            ?? MemoryModel.residentStep(shape, batch: b, tokens: t)
        return MemoryModel.withLowRank(base, shape, plan: plan, batch: b, tokens: t, rank: lowRank.rank, resampleEvery: lowRank.resampleEvery,
                                       streams: streams)
    }
}

/// Runs `body` `iterations` times and returns the median and minimum wall time in seconds.
func timed(_ iterations: Int, _ body: () throws -> Void) rethrows -> (median: Double, min: Double) {
    var times: [Double] = []
    for _ in 0..<iterations {
        let start = monotonicSeconds()
        try body()
        times.append(monotonicSeconds() - start)
    }
    times.sort()
    return (times[times.count / 2], times[0])
}

struct BenchZOStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zo-step",
        abstract: "Time ZO steps (MeZO: two perturbation and forward passes with the LM loss; a population: N + 1 or 2N) and print JSON.",
        discussion: """
            With --offload, the resident step runs first and the offloaded one after it, and a last line compares them. \
            The report's seconds_by_op (CPU backend) says where a step's time goes; gemm_share is the linear layers' part.
            """
    )

    @OptionGroup var workload: BenchWorkload

    @Option(help: "Timed steps (after one warm-up step).")
    var iterations = 3

    @OptionGroup var compute: ComputeOptions

    @Flag(name: .customLong("offloaded-only"), help: "With --offload, skip the resident step (for a model whose resident step does not fit).")
    var offloadedOnly = false

    @Option(help: "mezo, or population (N perturbations per step, see --queries).") var zo = Estimator.mezo

    @Option(help: "With --zo population: N.") var queries = 4

    @Flag(inversion: .prefixedNo, help: "With --zo population: one-sided (N + 1 forwards) or two-sided (2N).") var oneSided = true

    @Option(help: "gaussian, rademacher or ones (default: rademacher with a full-rank --zo population, else gaussian).")
    var perturbation: PerturbationKind?

    @Option(help: "The low-rank estimator's rank r for the blocks' 2-D weights (V drawn once).") var rank: Int?

    @Flag(name: .customLong("low-rank-only"), help: "With --rank: perturb only the low-rank weights (the streams then run stacked).")
    var lowRankOnly = false

    @Flag(inversion: .prefixedNo, help: "With --low-rank-only or --lora: run the streams stacked, one GEMM per linear for all (or one pass each).")
    var stack = true

    @Option(help: "Train a LoRA adapter of rank r (α 2r) on q_proj and v_proj over the frozen model instead (the streams run stacked).")
    var lora: Int?

    enum Estimator: String, ExpressibleByArgument { case mezo, population }

    /// The estimator's options.
    var options: MeZOOptions {
        let population = zo == .population ? PopulationOptions(queries: queries, oneSided: oneSided, normalize: .std) : nil
        let lowRank = rank.map { LowRankOptions(rank: $0, resampleEvery: 1_000_000, lowRankOnly: lowRankOnly) }
        return MeZOOptions(eps: 1e-3, perturbation: perturbation ?? (population == nil || lowRank != nil ? .gaussian : .rademacher),
                           lowRank: lowRank, population: population,
                           lora: lora.map { LoRAOptions(rank: $0, alpha: Float(2 * $0), targets: LoRAOptions.defaultTargets) })
    }

    func validate() throws {
        guard iterations >= 1, (1...1024).contains(queries) else { throw ValidationError("--iterations must be positive, --queries from 1 to 1024") }
        if offloadedOnly, !compute.offload { throw ValidationError("--offloaded-only needs --offload") }
        if (rank ?? 1) < 1 || (lowRankOnly && rank == nil) { throw ValidationError("--rank must be at least 1; --low-rank-only needs it") }
        if rank != nil, (perturbation ?? .gaussian) != .gaussian { throw ValidationError("low-rank ZO draws Gaussian factors; drop --perturbation") }
        if !stack, !lowRankOnly, lora == nil {
            throw ValidationError("--no-stack compares against stacked streams: add --rank r --low-rank-only, or --lora r")
        }
        if (lora ?? 1) < 1 || (lora != nil && rank != nil) { throw ValidationError("--lora r (r ≥ 1) takes the place of --rank") }
    }

    struct Report: Encodable {
        let bench = "zo-step"
        let mode: String
        /// The estimator, and forward passes of the batch per step.
        let estimator: String
        let forwards_per_step: Int
        let shape: String
        /// Transformer blocks (fewer than the shape's with --layers).
        let blocks: Int
        let backend: String
        let threads: Int
        let batch: Int
        let seq: Int
        let parameters: Int
        let iterations: Int
        let seconds_per_step_median: Double
        let seconds_per_step_min: Double
        /// B·T tokens per step over the step time.
        let tokens_per_s: Double
        /// Seconds per step in each backend operation, and the linear layers' share of the step.
        let seconds_by_op: [String: Double]
        let gemm_share: Double?
        /// The device arena's size (--device-memory), its exact high-water mark over the run,
        /// and the memory model's prediction of that (`zotune plan`; a LoRA adapter's factors not counted).
        let device_memory_budget: Int
        let peak_device_bytes: Int
        let predicted_peak_device_bytes: Int
        /// Offloaded runs: the plan and, per timed step, bytes moved each way and host seconds
        /// the compute stream waited for uploads.
        let plan: ResidencyPlan?
        let bytes_uploaded_per_step: Double?
        let bytes_downloaded_per_step: Double?
        let compute_wait_seconds_per_step: Double?
    }

    func run() throws {
        let (_, model, tokens) = try workload.makeModel(blockStorage: try compute.hostStorage())
        if offloadedOnly { return try printJSONLine(try measure(model: model, tokens: tokens, offloaded: true)) }
        let resident = try measure(model: model, tokens: tokens, offloaded: false)
        try printJSONLine(resident)
        guard compute.offload else { return }
        let offloaded = try measure(model: model, tokens: tokens, offloaded: true)
        try printJSONLine(offloaded)
        try printJSONLine(["offloaded_over_resident_tokens_per_s": offloaded.tokens_per_s / resident.tokens_per_s,
                           "offloaded_over_resident_peak_device_bytes": Double(offloaded.peak_device_bytes) / Double(resident.peak_device_bytes)])
    }

    /// Warm-up and timed steps on a fresh backend; the offloaded run streams the model's
    /// host groups (which the resident run leaves untouched).
    func measure(model: any CausalLM, tokens: TokenBatch, offloaded: Bool) throws -> Report {
        let backend = try compute.makeBackend()
        let options = self.options
        let runner: any ModelRunner
        if offloaded {
            let offloader = try OffloadedRunner(model: model, backend: backend, plan: compute.plan(), adapter: options.adapterFactory)
            offloader.stacksStreams = stack
            runner = offloader
        } else {
            let resident = try ResidentRunner(model: model, backend: backend, adapter: options.adapterFactory)
            resident.stacksStreams = stack
            runner = resident
        }
        let mezo = MeZO(runner: runner, options: options, seed: 3)
        _ = try mezo.step(lr: 1e-6, batch: tokens)  // warm-up
        let offloader = runner as? OffloadedRunner
        offloader?.resetStatistics()
        let cpu = backend as? CPUBackend
        cpu?.profile.isEnabled = true
        let times = try timed(iterations) { _ = try mezo.step(lr: 1e-6, batch: tokens) }
        let profile = cpu?.profile.take().mapValues { $0.seconds / Double(iterations) } ?? [:]
        let steps = Double(iterations)
        let predicted = predictedStep(model.shape, plan: offloaded ? compute.plan() : nil, options: options)
        return Report(mode: offloaded ? "offloaded" : "resident", estimator: options.estimatorSummary, forwards_per_step: options.streams,
                      shape: workload.shape, blocks: model.blocks.count,
                      backend: backend.name, threads: cpu?.threads ?? 0,
                      batch: workload.batch, seq: workload.seq, parameters: model.parameterCount, iterations: iterations,
                      seconds_per_step_median: times.median, seconds_per_step_min: times.min,
                      tokens_per_s: Double(workload.batch * workload.seq) / times.median, seconds_by_op: profile,
                      gemm_share: profile["gemm"].map { $0 / times.median },
                      device_memory_budget: backend.arena.stats.budget, peak_device_bytes: backend.arena.stats.highWater, predicted_peak_device_bytes: predicted.devicePeakBytes,
                      plan: offloader?.plan,
                      bytes_uploaded_per_step: offloader.map { Double($0.statistics.bytesUploaded) / steps },
                      bytes_downloaded_per_step: offloader.map { Double($0.statistics.bytesDownloaded) / steps },
                      compute_wait_seconds_per_step: offloader.map { $0.statistics.computeWaitSeconds / steps })
    }
}
