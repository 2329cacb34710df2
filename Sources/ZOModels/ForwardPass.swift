import ZOCore

/// One forward pass's device state between stages: its batch on the device, its hidden
/// states [B, T, C] and its stage context. A runner moves it through `embed`, every `block`
/// and `finish`, in that order, with the parameters wherever the runner keeps them; passes
/// may be interleaved block by block (the offloader runs many while a block is resident).
///
/// The pass owns its device buffers and returns them to the arena when it is released; the
/// shared `workspace` stays the caller's.
public final class ForwardPass {
    public let request: ForwardRequest
    public let context: StageContext
    /// Hidden states [B, T, C].
    public let hidden: DeviceBuffer
    let model: any CausalLM

    /// Uploads the request's batch and allocates its hidden states; `workspace` holds at
    /// least `model.workspaceCount(rows:)` floats for the batch's rows.
    public init(_ request: ForwardRequest, model: any CausalLM, backend: any Backend, constants: DeviceBuffer, workspace: DeviceBuffer,
                cache: KVCache? = nil, tokenTablePerturbation: RowPerturbation? = nil, linearHook: (any LinearHook)? = nil) throws {
        let batch = request.batch
        let rows = batch.batchSize * batch.tokens
        let past = cache?.length ?? 0
        if let cache, past + batch.tokens > cache.capacity || batch.batchSize != cache.batchSize {
            throw ModelError.sequenceTooLong(sequence: 0, length: past + batch.tokens, maximum: cache.capacity)
        }
        if let selected = request.rows, let bad = selected.first(where: { !(0..<rows).contains($0) }) {
            throw ModelError.emptyBatch("selected row \(bad) is outside the batch's \(rows) positions")
        }
        let device = try DeviceTokenBatch(batch, positions: model.positions(for: batch, past: past), backend: backend)
        do {
            hidden = try backend.allocate(rows * model.hiddenSize * 4, label: "hidden states [B, T, C]")
        } catch {
            device.free(on: backend)
            throw error
        }
        self.request = request
        self.model = model
        context = StageContext(backend: backend, batch: device, workspace: workspace, constants: constants, cache: cache,
                               tokenTablePerturbation: tokenTablePerturbation, linearHook: linearHook)
    }

    deinit {
        context.batch.free(on: context.backend)
        context.backend.free(hidden)
    }

    /// hidden = the embeddings of the batch's tokens.
    public func embed(_ embedding: DeviceBuffer) {
        model.embed(embedding, hidden: hidden, context: context)
    }

    /// hidden = block `index`(hidden).
    public func block(_ index: Int, _ parameters: any BlockWeights) {
        model.block(index, parameters, hidden: hidden, context: context)
    }

    /// Runs the head (on the selected rows alone when the request names them), the per-token
    /// losses and the requested outputs, and reads them back; appends the batch to the cache.
    public func finish(head: DeviceBuffer, embedding: DeviceBuffer) throws -> ForwardResult {
        try finish(head: head, embedding: embedding, recording: nil)
    }

    /// `finish`; with a `recording`, the head records its tape there (for `TrainableLM.headBackward`)
    /// and the logits, targets and selected rows stay on the device, owned by the recording.
    public func finish(head: DeviceBuffer, embedding: DeviceBuffer, recording: HeadRecording?) throws -> ForwardResult {
        let backend = context.backend, batch = request.batch
        context.cache?.length += batch.tokens
        var headRows = batch.batchSize * batch.tokens, headInput = hidden, targets = context.batch.targets
        var temporary: [DeviceBuffer] = []
        defer { temporary.forEach(backend.free) }
        /// A buffer freed on return, or handed to the recording.
        func own(_ buffer: DeviceBuffer, keep: ReferenceWritableKeyPath<HeadRecording, DeviceBuffer?>? = nil) -> DeviceBuffer {
            if let recording, let keep { recording[keyPath: keep] = buffer } else { temporary.append(buffer) }
            return buffer
        }
        if let selected = request.rows {
            headRows = selected.count
            let indices = own(try backend.upload(selected.map(Int32.init), label: "selected rows"), keep: \.selectedRows)
            headInput = own(try backend.allocate(max(1, headRows) * model.hiddenSize * 4, label: "selected hidden states [R, C]"))
            targets = own(try backend.upload(selected.map { batch.targets[$0] }, label: "selected targets"), keep: \.selectedTargets)
            backend.gatherRows(table: hidden, width: model.hiddenSize, indices: indices, count: headRows, out: headInput, accumulate: false)
        }
        let logits = own(try backend.allocate(max(1, headRows) * model.vocabSize * 4, label: "logits [R, V]"), keep: \.logits)
        let losses = own(try backend.allocate(max(1, headRows) * 4, label: "token losses [R]"))
        if let recording, let trainable = model as? any TrainableLM {
            let tape = try backend.allocate(max(1, trainable.headTapeCount(rows: headRows)) * 4, label: "head tape")
            recording.tape = tape
            trainable.head(head, embedding: embedding, hidden: headInput, logits: logits, rows: headRows, context: context, tape: tape)
        } else {
            model.head(head, embedding: embedding, hidden: headInput, logits: logits, rows: headRows, context: context)
        }
        recording?.rows = headRows
        backend.crossEntropy(logits: logits, targets: targets, losses: losses, rows: headRows, vocab: model.vocabSize)

        var argmax: [Int32]?
        if request.outputs.contains(.argmax) {
            let indices = own(try backend.allocate(max(1, headRows) * 4, label: "arg-max [R]"))
            backend.argmax(logits: logits, out: indices, rows: headRows, vocab: model.vocabSize)
            argmax = try backend.read(indices, count: headRows, as: Int32.self)
        }
        return ForwardResult(batch: batch, rows: request.rows,
                             tokenLosses: try backend.read(losses, count: headRows, as: Float.self),
                             logits: request.outputs.contains(.logits) ? try backend.read(logits, count: headRows * model.vocabSize) : nil,
                             argmax: argmax)
    }
}

/// The device state a recorded head leaves for its backward: the head's tape, the logits
/// [R, V], and for a head over selected rows their flat positions and targets (Int32 [R]).
/// Frees what it holds when released.
public final class HeadRecording {
    public var tape: DeviceBuffer?
    public var logits: DeviceBuffer?
    public var selectedRows: DeviceBuffer?
    public var selectedTargets: DeviceBuffer?
    /// R: the rows the head ran on.
    public var rows = 0
    private let backend: any Backend

    public init(backend: any Backend) { self.backend = backend }

    deinit {
        for buffer in [tape, logits, selectedRows, selectedTargets] { buffer.map(backend.free) }
    }
}

extension ForwardPass {
    /// Device bytes a pass over R = B·T rows holds from creation to release: its token batch
    /// (ids, positions, mask, targets: Int32 [B, T] each) and hidden states [B, T, C].
    public static func deviceBytes(rows: Int, hiddenSize: Int) -> Int {
        4 * DeviceArena.reservedSize(rows * 4) + DeviceArena.reservedSize(rows * hiddenSize * 4)
    }

    /// Device bytes `finish` holds while it runs the head over every one of R rows: logits
    /// [R, V] and token losses [R] (the arg-max output, when requested, adds [R]).
    public static func headBytes(rows: Int, vocabSize: Int) -> Int {
        DeviceArena.reservedSize(max(1, rows) * vocabSize * 4) + DeviceArena.reservedSize(max(1, rows) * 4)
    }
}
