import ZOCore

/// A fused linear layer of every block: consecutive 2-D weights [out_i, in] read by one
/// `Backend.linear` (OPT's q|k|v, Llama's gate|up), as element offsets in the block's layout.
public struct BlockLinear: Sendable, Equatable {
    public let weightOffset: Int
    /// Σ out_i and in.
    public let outputs: Int
    public let inputs: Int

    public init(weightOffset: Int, outputs: Int, inputs: Int) {
        self.weightOffset = weightOffset
        self.outputs = outputs
        self.inputs = inputs
    }

    /// Whether elements [start, start + count) of the block's layout lie in this linear's weights.
    public func covers(_ start: Int, _ count: Int) -> Bool {
        start >= weightOffset && start + count <= weightOffset + outputs * inputs
    }

    /// The indices of `specs` (a block's layout) that are this linear's weights, in order.
    public func weightIndices(in specs: [ParameterSpec]) -> [Int] {
        specs.indices.filter { specs[$0].kind == .matrix && covers(specs[$0].offset, specs[$0].count) }
    }
}

/// What a runner adds to the linear layers of a pass's blocks, beside their weights: an
/// estimator's term (the low-rank perturbation of a stream). Models know nothing of it; they
/// run each block linear through `StageContext.linear`.
public protocol LinearHook: Sendable {
    /// Writes (`accumulate` false) or adds its term for block `index`'s fused linear whose
    /// weights start at `weightOffset`, for input x [R, in], into out [R, O]; returns whether it
    /// did (false: nothing for this linear).
    func apply(block index: Int, weightOffset: Int, x: DeviceBuffer, out: DeviceBuffer, rows: Int, accumulate: Bool) -> Bool
}

/// The backward of what a `LinearHook` added (a first-order part's LoRA factors): models call it
/// through `StageContext.linearBackward` for every block linear they backpropagate.
public protocol LinearBackwardHook: Sendable {
    /// For block `index`'s fused linear whose weights start at `weightOffset`, given its input
    /// x [R, in] and dL/d(its output before the activation) gradY [R, O]: accumulates the
    /// gradients of the hook's own parameters and adds the term's dL/dx into gradX [R, in]
    /// (nil: not wanted).
    func backward(block index: Int, weightOffset: Int, x: DeviceBuffer, gradY: DeviceBuffer, gradX: DeviceBuffer?, rows: Int)
}

/// Device state beside a runner's blocks that changes what their fused linears compute in each
/// stream of a ZO step (a low-rank estimator's factors, a LoRA adapter). The runner makes it (for
/// the blocks it runs, and a LoRA adapter for a tail's blocks too), gives each stream's passes its hook and its other passes the resting
/// hook, and leaves the weights it adapts out of full perturbation passes; what it holds and how
/// it changes between steps is its owner's (an estimator's) business.
public protocol LinearAdapter: AnyObject, Sendable {
    /// The perturbation ids of the weights full passes leave out (those the adapter perturbs;
    /// every one for an adapter over a frozen base).
    var adaptedTensorIDs: Set<UInt32> { get }
    /// Makes room for passes of up to `rows` rows.
    func reserve(rows: Int) throws
    /// What the block linears of a pass add whose rows are those of `streams` in equal parts,
    /// in order (one stream: all its rows).
    func hook(streams: Range<Int>) -> any LinearHook
    /// What the block linears of passes outside a step's streams (evaluation, generation) add:
    /// the adapter as it stands, or nil when that is nothing or is folded into the weights first.
    func restingHook() -> (any LinearHook)?
}

/// An adapter whose accumulated change the runner moves into the blocks' weights when asked
/// (`ModelRunner.foldAdapter`): the low-rank estimator's A Vᵀ.
public protocol FoldingAdapter: LinearAdapter {
    /// Moves what block `index`'s linears add into its weights in `parameters` (the block's
    /// buffer); afterwards they add nothing until the owner changes the adapter again.
    func fold(block index: Int, into parameters: DeviceBuffer)
}

/// How a runner makes its `LinearAdapter` for a model whose blocks 0..<blockCount it runs itself
/// (the rest are a first-order tail's): an estimator's or a LoRA adapter's settings.
public protocol LinearAdapterFactory: Sendable {
    func makeAdapter(model: any CausalLM, blockCount: Int, backend: any Backend) throws -> any LinearAdapter
}
