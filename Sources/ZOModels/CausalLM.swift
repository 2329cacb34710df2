import ZOCore

/// The device-side copy of a `TokenBatch`: Int32 buffers of [B, T] each.
public struct DeviceTokenBatch: Sendable {
    public let batchSize: Int
    public let tokens: Int
    public let ids: DeviceBuffer
    /// Rows of the positions table to add, per token.
    public let positions: DeviceBuffer
    public let mask: DeviceBuffer
    public let targets: DeviceBuffer

    /// Rows B·T.
    public var rows: Int { batchSize * tokens }

    /// Uploads `batch` with `positions` (from the architecture) on the compute stream.
    public init(_ batch: TokenBatch, positions: [Int32], backend: any Backend) throws {
        batchSize = batch.batchSize
        tokens = batch.tokens
        ids = try backend.upload(batch.ids, label: "token ids")
        self.positions = try backend.upload(positions, label: "positions")
        mask = try backend.upload(batch.mask, label: "attention mask")
        targets = try backend.upload(batch.targets, label: "targets")
    }

    /// Returns the buffers to the arena.
    public func free(on backend: any Backend) {
        for buffer in [ids, positions, mask, targets] { backend.free(buffer) }
    }
}

/// Keys and values of earlier tokens for incremental decoding: per block, K and V of
/// [B, capacity, NKV·HS] and the key mask [B, capacity], all in device memory.
// @unchecked Sendable: confined to the thread that decodes with it — `ForwardPass.finish` advances `length` (the
// one `var`) there; the rest is `let`s. It is Sendable only because `StageContext` is.
public final class KVCache: @unchecked Sendable {
    public let batchSize: Int
    public let capacity: Int
    /// Floats per cached row (NKV·HS).
    public let width: Int
    public let keys: [DeviceBuffer]
    public let values: [DeviceBuffer]
    /// Int32 [B, capacity].
    public let mask: DeviceBuffer
    /// Tokens per sequence already stored.
    public internal(set) var length = 0
    private let backend: any Backend

    /// Allocates a cache for `blocks` blocks.
    public init(blocks: Int, batchSize: Int, capacity: Int, width: Int, backend: any Backend) throws {
        self.batchSize = batchSize
        self.capacity = capacity
        self.width = width
        self.backend = backend
        let bytes = batchSize * capacity * width * 4
        keys = try (0..<blocks).map { try backend.allocate(bytes, label: "KV cache keys, block \($0)") }
        values = try (0..<blocks).map { try backend.allocate(bytes, label: "KV cache values, block \($0)") }
        mask = try backend.allocate(batchSize * capacity * 4, label: "KV cache mask")
    }

    deinit {
        for buffer in keys + values + [mask] { backend.free(buffer) }
    }
}

/// Everything a stage function reads besides its parameters.
public struct StageContext: Sendable {
    public let backend: any Backend
    public let batch: DeviceTokenBatch
    /// Scratch of `workspaceCount(rows:)` floats.
    public let workspace: DeviceBuffer
    /// The architecture's constant tables (`CausalLM.constants`) on the device.
    public let constants: DeviceBuffer
    /// Earlier tokens' keys and values when decoding incrementally; the batch's tokens come
    /// after the cache's `length` tokens.
    public let cache: KVCache?
    /// When set, the embedding stage reads the token table as this perturbation would leave
    /// it (see `CausalLM.tiedTokenTable`).
    public let tokenTablePerturbation: RowPerturbation?
    /// When set, what the runner adds to every block linear of this pass.
    public let linearHook: (any LinearHook)?
    /// When set (backpropagating), what receives the gradients of the hook's terms.
    public let linearBackwardHook: (any LinearBackwardHook)?

    public init(backend: any Backend, batch: DeviceTokenBatch, workspace: DeviceBuffer, constants: DeviceBuffer, cache: KVCache?,
                tokenTablePerturbation: RowPerturbation? = nil, linearHook: (any LinearHook)? = nil,
                linearBackwardHook: (any LinearBackwardHook)? = nil) {
        self.backend = backend
        self.batch = batch
        self.workspace = workspace
        self.constants = constants
        self.cache = cache
        self.tokenTablePerturbation = tokenTablePerturbation
        self.linearHook = linearHook
        self.linearBackwardHook = linearBackwardHook
    }

    /// Block `index`'s linear layer whose weights start at `weightOffset` in the block's layout:
    /// out [m, n] (+)= x [m, k] · weight [n, k]ᵀ + bias, then the activation, with the runner's
    /// `linearHook` term added before the activation.
    public func linear(block index: Int, weightOffset: Int, x: DeviceBuffer, weight: DeviceBuffer, bias: DeviceBuffer?,
                       out: DeviceBuffer, m: Int, n: Int, k: Int, activation: Activation, accumulate: Bool) {
        let hooked = linearHook?.apply(block: index, weightOffset: weightOffset, x: x, out: out, rows: m, accumulate: accumulate) ?? false
        backend.linear(x: x, weight: weight, bias: bias, out: out, m: m, n: n, k: k, activation: activation, accumulate: accumulate || hooked)
    }

    /// Tokens before this batch's.
    public var past: Int { cache?.length ?? 0 }

    /// The attention inputs of block `index` for a fused q|k|v buffer [B, T, (NH + 2·NKV)·HS]:
    /// without a cache, k and v are views into `qkv`; with one, the new rows (and the batch's
    /// mask) are appended to the cache first and k, v, mask are the cache's. `window` is the
    /// block's sliding window (0: none), `scale` the scores' (nil: 1/√HS), `softcap` their cap (0: none).
    public func attentionInputs(block index: Int, qkv: DeviceBuffer, heads: Int, kvHeads: Int, headSize: Int, window: Int = 0,
                                scale: Float? = nil, softcap: Float = 0)
        -> (k: DeviceBuffer, v: DeviceBuffer, mask: DeviceBuffer, shape: AttentionShape) {
        let b = batch.batchSize, t = batch.tokens
        let stride = (heads + 2 * kvHeads) * headSize
        let qWidth = heads * headSize, kvWidth = kvHeads * headSize
        let k = qkv.floats(qWidth, b * t * stride - qWidth)
        let v = qkv.floats(qWidth + kvWidth, b * t * stride - qWidth - kvWidth)
        guard let cache else {
            return (k, v, batch.mask, .fused(batch: b, tokens: t, heads: heads, kvHeads: kvHeads, headSize: headSize, window: window,
                                             scale: scale, softcap: softcap))
        }
        let past = cache.length
        for sequence in 0..<b {
            let row = sequence * cache.capacity + past
            backend.copyRows(source: k.floats(sequence * t * stride, (t - 1) * stride + kvWidth), sourceStride: stride,
                             destination: cache.keys[index].floats(row * kvWidth, t * kvWidth), destinationStride: kvWidth,
                             rows: t, width: kvWidth)
            backend.copyRows(source: v.floats(sequence * t * stride, (t - 1) * stride + kvWidth), sourceStride: stride,
                             destination: cache.values[index].floats(row * kvWidth, t * kvWidth), destinationStride: kvWidth,
                             rows: t, width: kvWidth)
            if index == 0 {
                backend.copyRows(source: batch.mask.floats(sequence * t, t), sourceStride: t,
                                 destination: cache.mask.floats(row, t), destinationStride: t, rows: 1, width: t)
            }
        }
        var shape = AttentionShape(batch: b, queries: t, keys: past + t, capacity: cache.capacity, heads: heads,
                                   kvHeads: kvHeads, headSize: headSize, queryStride: stride, kvStride: kvWidth,
                                   scale: scale ?? 1 / Float(headSize).squareRoot(), window: window)
        shape.softcap = softcap
        return (cache.keys[index], cache.values[index], cache.mask, shape)
    }
}

/// A decoder-only language model split into the units the trainer and the offloader move:
/// an embedding stage, independent blocks (one contiguous parameter buffer each) and a head.
///
/// Stage functions read parameters from device buffers holding the group's layout and are
/// written against `Backend` only. Hidden states are [B, T, C] Float32 rows.
public protocol CausalLM: AnyObject, Sendable {
    var embedding: ParameterGroup { get }
    var blocks: [ParameterGroup] { get }
    var head: ParameterGroup { get }

    /// V.
    var vocabSize: Int { get }
    /// C.
    var hiddenSize: Int { get }
    /// The longest sequence the positions allow.
    var maxSequenceLength: Int { get }
    /// The id used to pad sequences.
    var padTokenId: Int { get }
    /// Floats per token a KV cache keeps per block (NKV·HS).
    var kvWidth: Int { get }

    /// The index among the embedding group's tensors of the token table when the head reads
    /// it too (a tied output embedding), else nil.
    var tiedTokenTable: Int? { get }

    /// The fused linears of every block (their layouts differ only in names), for the
    /// low-rank ZO estimator.
    var blockLinears: [BlockLinear] { get }

    /// The stored value of a norm weight that scales by 1: 1, or 0 where the norm multiplies by
    /// 1 + w (Gemma).
    var unitNormWeight: Float { get }

    /// The Hugging Face config.json describing this model.
    func configJSON() throws -> [UInt8]

    /// Non-trainable tables the stages read (rotary cos/sin); empty if none.
    var constants: [Float] { get }

    /// Rows of the positions table per token of `batch` [B, T], for tokens that follow
    /// `past` earlier ones.
    func positions(for batch: TokenBatch, past: Int) -> [Int32]

    /// Float32 elements of scratch the stages need for `rows` = B·T tokens.
    func workspaceCount(rows: Int) -> Int

    /// hidden [B, T, C] = the embeddings of the batch's tokens.
    func embed(_ embedding: DeviceBuffer, hidden: DeviceBuffer, context: StageContext)

    /// hidden [B, T, C] = block `index`(hidden), in place, with its parameters in `parameters`.
    func block(_ index: Int, _ parameters: any BlockWeights, hidden: DeviceBuffer, context: StageContext)

    /// logits [R, V] from R rows of last hidden states [R, C] (which the head may overwrite);
    /// R is every token of the batch or a selection of them.
    func head(_ head: DeviceBuffer, embedding: DeviceBuffer, hidden: DeviceBuffer, logits: DeviceBuffer, rows: Int,
              context: StageContext)
}

extension CausalLM {
    public var unitNormWeight: Float { 1 }

    /// Every group in execution order: embedding, blocks, head.
    public var groups: [ParameterGroup] { [embedding] + blocks + [head] }

    /// Total parameters (tied weights counted once).
    public var parameterCount: Int { groups.reduce(0) { $0 + $1.layout.count } }

    /// Pads and validates `sequences` for this model.
    public func makeBatch(_ sequences: [[Int]]) throws(ModelError) -> TokenBatch {
        try TokenBatch(sequences: sequences, vocabSize: vocabSize, maxLength: maxSequenceLength, padTokenId: padTokenId)
    }
}
