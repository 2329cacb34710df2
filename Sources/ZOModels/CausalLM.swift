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

    /// Rows of the positions table per token of `batch` [B, T].
    func positions(for batch: TokenBatch) -> [Int32]

    /// Float32 elements of scratch the stages need for `rows` = B·T tokens.
    func workspaceCount(rows: Int) -> Int

    /// hidden [B, T, C] = token and position embeddings of `batch`.
    func embed(_ embedding: DeviceBuffer, batch: DeviceTokenBatch, hidden: DeviceBuffer,
               workspace: DeviceBuffer, backend: any Backend)

    /// hidden [B, T, C] = block(hidden), in place, with the block's parameters in `parameters`.
    func block(_ parameters: DeviceBuffer, batch: DeviceTokenBatch, hidden: DeviceBuffer,
               workspace: DeviceBuffer, backend: any Backend)

    /// logits [B, T, V] from the last hidden state (which the head may overwrite).
    func head(_ head: DeviceBuffer, embedding: DeviceBuffer, batch: DeviceTokenBatch, hidden: DeviceBuffer,
              logits: DeviceBuffer, workspace: DeviceBuffer, backend: any Backend)
}

extension CausalLM {
    /// Every group in execution order: embedding, blocks, head.
    public var groups: [ParameterGroup] { [embedding] + blocks + [head] }

    /// Total parameters (tied weights counted once).
    public var parameterCount: Int { groups.reduce(0) { $0 + $1.layout.count } }

    /// Pads and validates `sequences` for this model.
    public func makeBatch(_ sequences: [[Int]]) throws(ModelError) -> TokenBatch {
        try TokenBatch(sequences: sequences, vocabSize: vocabSize, maxLength: maxSequenceLength, padTokenId: padTokenId)
    }
}
