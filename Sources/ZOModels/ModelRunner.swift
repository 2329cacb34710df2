import ZOCore

/// A forward pass a task asks for: a batch, the outputs to bring back, and optionally only
/// some rows (flat positions b·T + t) for the head.
public struct ForwardRequest: Sendable {
    public let batch: TokenBatch
    public let outputs: ForwardOutputs
    public let rows: [Int]?

    public init(_ batch: TokenBatch, outputs: ForwardOutputs = [], rows: [Int]? = nil) {
        self.batch = batch
        self.outputs = outputs
        self.rows = rows
    }
}

/// One example's part of a batch loss: the loss is Σ_e sum_e / Σ_e weight_e over the batch's
/// examples in batch order (`LossPlan.combine`). A mean of token losses has each example's token
/// losses as `sum` and its targets as `weight`; a mean over examples has weight 1.
public struct ExampleLoss: Sendable, Equatable {
    public var sum: Double
    public var weight: Double

    public init(sum: Double, weight: Double) {
        self.sum = sum
        self.weight = weight
    }
}

/// A loss as forward passes and the reduction of their results to one number; with a
/// `gradient`, also its derivative with respect to each pass's outputs (for first-order
/// training).
///
/// A plan made from per-example losses (`init(requests:examples:gradient:)`) can be split over
/// processes: each runs the passes of some examples, and the loss of the whole batch combines
/// every example's part in batch order — the same bits as one process running them all (the
/// kernels compute a sequence the same way whatever else is in its pass).
public struct LossPlan {
    public let requests: [ForwardRequest]
    public let reduce: ([ForwardResult]) -> Double
    /// Each example's part of the loss, in the order of the examples the plan was made for
    /// (nil: a loss that is not a sum over examples).
    public let examples: (([ForwardResult]) -> [ExampleLoss])?
    /// dL/d(outputs) per request, from the results (which hold the logits the request asked for).
    public let gradient: (([ForwardResult]) -> [LossGradient])?

    public init(requests: [ForwardRequest], reduce: @escaping ([ForwardResult]) -> Double,
                gradient: (([ForwardResult]) -> [LossGradient])? = nil) {
        self.requests = requests
        self.reduce = reduce
        self.examples = nil
        self.gradient = gradient
    }

    /// The loss Σ_e sum_e / Σ_e weight_e of the examples' parts (`combine`).
    public init(requests: [ForwardRequest], examples: @escaping ([ForwardResult]) -> [ExampleLoss],
                gradient: (([ForwardResult]) -> [LossGradient])? = nil) {
        self.requests = requests
        self.reduce = { Self.combine(examples($0)) }
        self.examples = examples
        self.gradient = gradient
    }

    /// Σ sum / Σ weight, each summed in order (NaN when the weights sum to 0).
    public static func combine(_ parts: [ExampleLoss]) -> Double {
        var sum = 0.0, weight = 0.0
        for part in parts {
            sum += part.sum
            weight += part.weight
        }
        return weight == 0 ? .nan : sum / weight
    }
}

/// The derivative of a loss with respect to one forward pass's outputs: per head row r,
/// dL/d(token loss r), plus terms added straight to dL/d(logits) (for losses over logits
/// rather than token losses).
public struct LossGradient: Sendable, Equatable {
    /// [R]: one weight per row the head ran on.
    public var tokenWeights: [Float]
    /// (row, column, dL/d logit[row, column]) terms.
    public var logitTerms: [LogitTerm]

    public struct LogitTerm: Sendable, Equatable {
        public let row: Int, column: Int
        public let value: Float
        public init(row: Int, column: Int, value: Float) {
            self.row = row
            self.column = column
            self.value = value
        }
    }

    public init(tokenWeights: [Float], logitTerms: [LogitTerm] = []) {
        self.tokenWeights = tokenWeights
        self.logitTerms = logitTerms
    }

    /// Every term multiplied by `factor`.
    public func scaled(by factor: Float) -> LossGradient {
        LossGradient(tokenWeights: tokenWeights.map { $0 * factor },
                     logitTerms: logitTerms.map { LogitTerm(row: $0.row, column: $0.column, value: $0.value * factor) })
    }
}

/// One pass over every parameter: θ ← a·θ + Σ_k c_k·z_k (see `Backend.perturb`; a applies to
/// decaying tensors only).
public struct PerturbationPass: Sendable, Equatable {
    public var terms: [PerturbationTerm]
    public var decayFactor: Float
    public var kind: PerturbationKind

    public init(terms: [PerturbationTerm], decayFactor: Float = 1, kind: PerturbationKind) {
        self.terms = terms
        self.decayFactor = decayFactor
        self.kind = kind
    }

    /// Whether the pass changes nothing.
    public var isIdentity: Bool { terms.isEmpty && decayFactor == 1 }
}

/// One of the evaluations of a ZO step: the pass that takes the parameters from the previous
/// stream's values to this stream's (the first stream's pass also applies the previous
/// step's pending update), and whether the runner's `LinearAdapter` adds its stream term.
///
/// A stream that is not `evaluated` is only walked through: its pass is applied (so that the
/// parameters reach every later stream by the same operations as in a run evaluating it) but
/// no forward pass runs for it (another process evaluates it).
public struct PerturbedStream: Sendable, Equatable {
    public var pass: PerturbationPass
    /// s: the adapter's stream (`LinearAdapter.hook(streams:)`); nil: the linears add nothing
    /// (an adapter's resting term included: `MeZO` gives every stream of an adapted runner its s).
    public var adapterStream: Int?
    /// Whether the stream's forward passes run here (its results are empty otherwise).
    public var evaluated: Bool

    public init(pass: PerturbationPass, adapterStream: Int? = nil, evaluated: Bool = true) {
        self.pass = pass
        self.adapterStream = adapterStream
        self.evaluated = evaluated
    }
}

/// Runs a model wherever its parameters live (all resident in device memory, or streamed
/// block by block from host memory): forward passes, perturbation passes over every
/// parameter, and the streams of forward passes a ZO step needs.
///
/// Every implementation computes the same numbers as `ResidentRunner`, bit for bit (with the
/// same choice of stacking streams, `StreamStack`).
public protocol ModelRunner: AnyObject, Sendable {
    var model: any CausalLM { get }
    var backend: any Backend { get }

    /// The requests' forward passes, in order (a runner may run them together).
    func forward(_ requests: [ForwardRequest]) throws -> [ForwardResult]

    /// Runs the model on `batch` and returns per-token losses plus the requested outputs,
    /// for every position or only for the flat positions `rows` (b·T + t); with a `cache`,
    /// the batch's tokens follow the cached ones and are appended to it.
    func forward(_ batch: TokenBatch, outputs: ForwardOutputs, cache: KVCache?, rows: [Int]?) throws -> ForwardResult

    /// Applies `pass` to every parameter; with a `snapshot`, copies every group's values
    /// part-way through the pass into it.
    func perturb(_ pass: PerturbationPass, snapshot: SnapshotRequest?) throws

    /// A ZO step's evaluations: for each stream in order, applies its pass and runs `requests`
    /// (results [stream][request]; none for a stream that is not `evaluated`). A `snapshot` is
    /// taken during the first stream's pass.
    /// An offloading runner runs every stream in one sweep: each block arrives once per step.
    func forward(_ requests: [ForwardRequest], streams: [PerturbedStream], snapshot: SnapshotRequest?) throws -> [[ForwardResult]]

    /// Brings the parameters' current values into the model's host groups (with a folding
    /// adapter: after `foldAdapter`; a LoRA adapter's factors stay its own).
    func copyParametersToHost() throws

    /// What the runner's blocks' linears add beside their weights (made by the factory the
    /// runner was given: a low-rank estimator's factors, a LoRA adapter), if anything.
    var adapter: (any LinearAdapter)? { get }

    /// Folds a `FoldingAdapter` into every block's weights (nothing for other adapters).
    func foldAdapter() throws
}

extension ModelRunner {
    /// Applies `pass` to every parameter.
    public func perturb(_ pass: PerturbationPass) throws { try perturb(pass, snapshot: nil) }

    /// A forward pass without a cache.
    public func forward(_ batch: TokenBatch, outputs: ForwardOutputs = [], rows: [Int]? = nil) throws -> ForwardResult {
        try forward(batch, outputs: outputs, cache: nil, rows: rows)
    }

    /// The requests' forward passes one after the other.
    public func forward(_ requests: [ForwardRequest]) throws -> [ForwardResult] {
        try requests.map { try forward($0.batch, outputs: $0.outputs, cache: nil, rows: $0.rows) }
    }
}

extension CausalLM {
    /// The tensors of every group as `Backend.perturb` sweeps them: ids numbered through the
    /// model in group order (the perturbation streams), weight decay on matrices and
    /// embeddings only (not on biases and norms, as in MeZO).
    public var perturbedTensors: [[PerturbedTensor]] { perturbedTensors(leavingOut: []) }

    /// `perturbedTensors` without the embedding group's tensors at `embeddingTensors` (trained
    /// first-order elsewhere) and the tensors `ids` (perturbed low-rank); every other tensor
    /// keeps its id.
    public func perturbedTensors(leavingOut embeddingTensors: Set<Int>, ids: Set<UInt32> = []) -> [[PerturbedTensor]] {
        var id: UInt32 = 0
        return groups.enumerated().map { index, group in
            group.layout.specs.enumerated().compactMap { position, spec in
                defer { id += 1 }
                guard index != 0 || !embeddingTensors.contains(position), !ids.contains(id) else { return nil }
                return PerturbedTensor(offset: spec.offset, count: spec.count, id: id, decays: spec.kind == .matrix || spec.kind == .embedding)
            }
        }
    }
}
