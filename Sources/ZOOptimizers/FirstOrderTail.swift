import ZOCore
import ZOModels

/// The part of a model trained first-order: the deepest blocks (from `firstBlock` on), the
/// final norm and the head, resident on the device with their gradients — and, in a full
/// first-order run (`firstBlock` 0, `trainsEmbedding`), the embedding stage too.
///
/// A runner built with a tail runs the embedding and the blocks before `firstBlock` itself
/// (resident or streamed, ZO-trained or frozen) and hands every pass to `finish`. While
/// `isRecording`, `finish` records what backpropagation needs (a tape per block, the head's
/// tape and logits) and keeps the pass; `backward` then backpropagates every recorded pass
/// from its loss gradient, accumulating into `gradients`. The hidden state entering block
/// `firstBlock` is treated as a constant (detached): nothing before it gets a gradient
/// except, through the head, a tied token table. With the runner's LoRA adapter the model is
/// frozen: the tail trains the adapter's factors of its blocks (their gradients come through
/// `StageContext.linearBackwardHook`).
// @unchecked Sendable: confined to the thread that drives training — the runner calls `finish`
// and the trainer `backward`/the optimizer its buffers, one step after the other, never at once;
// `RunnerTail` is Sendable only because the runners that hold it are.
public final class FirstOrderTail: RunnerTail, @unchecked Sendable {
    public let model: any TrainableLM
    public let backend: any GradientBackend
    public let firstBlock: Int
    /// Whether the embedding group trains first-order (only with `firstBlock` 0).
    public let trainsEmbedding: Bool
    /// Device copies of blocks firstBlock..<L, and of the head group.
    public let blocks: [DeviceBuffer]
    public let head: DeviceBuffer
    /// Gradients with the layouts of `blocks` and `head`; `embeddingGradient` has the
    /// embedding group's layout (full first-order) or the tied token table's size (nil when
    /// neither trains here).
    public let blockGradients: [DeviceBuffer]
    public let headGradient: DeviceBuffer
    public let embeddingGradient: DeviceBuffer?
    /// Whether `finish` records passes for `backward`.
    public var isRecording = false
    /// The runner's embedding group on the device (`attach`).
    public private(set) var embedding: DeviceBuffer?
    /// The runner's LoRA adapter (`attach`): then the model is frozen and the tail trains the
    /// adapter's factors of its blocks instead.
    public private(set) var lora: LoRAState?
    private var recorded: [RecordedPass] = []

    /// Uploads blocks `firstBlock...` and the head and allocates their gradients. Throws when
    /// the model or the backend cannot train first-order.
    public init(model: any CausalLM, backend: any Backend, firstBlock: Int, trainsEmbedding: Bool = false) throws {
        guard let trainable = model as? any TrainableLM else {
            throw ModelError.unsupported(path: "\(type(of: model))", reason: "first-order training is not implemented for it")
        }
        guard let gradientBackend = backend as? any GradientBackend else {
            throw BackendError.unavailable("first-order training needs backward operations, which \(backend.name) does not have yet")
        }
        precondition((0...model.blocks.count).contains(firstBlock) && (!trainsEmbedding || firstBlock == 0))
        self.model = trainable
        self.backend = gradientBackend
        self.firstBlock = firstBlock
        self.trainsEmbedding = trainsEmbedding
        var allocated: [DeviceBuffer] = []
        func allocate(_ floats: Int, _ label: String) throws -> DeviceBuffer {
            let buffer = try backend.allocate(max(1, floats) * 4, label: label)
            allocated.append(buffer)
            gradientBackend.zero(buffer, count: floats)
            return buffer
        }
        func resident(_ group: ParameterGroup) throws -> DeviceBuffer {
            let buffer = try allocate(group.layout.count, group.label)
            backend.upload(group.storage, hostOffset: 0, to: buffer, byteCount: group.layout.byteCount, on: backend.computeStream)
            return buffer
        }
        do {
            let trained = model.blocks[firstBlock...]
            blocks = try trained.map(resident)
            head = try resident(model.head)
            blockGradients = try trained.map { try allocate($0.layout.count, "gradient of \($0.label)") }
            headGradient = try allocate(model.head.layout.count, "gradient of \(model.head.label)")
            let table = model.tiedTokenTable.map { model.embedding.layout.specs[$0].count }
            embeddingGradient = try (trainsEmbedding ? model.embedding.layout.count : table).map { try allocate($0, "gradient of the embedding") }
        } catch {
            allocated.forEach(backend.free)
            throw error
        }
        // Past this point self is whole: a failure here is `deinit`'s to clean up.
        try backend.synchronize(backend.computeStream)
    }

    deinit {
        recorded.removeAll()
        for buffer in blocks + blockGradients + [head, headGradient] + (embeddingGradient.map { [$0] } ?? []) { backend.free(buffer) }
    }

    /// Called by the runner with its device copy of the embedding group (the token table the
    /// head reads, and what a full first-order run updates) and its adapter.
    public func attach(embedding: DeviceBuffer, adapter: (any LinearAdapter)?) {
        self.embedding = embedding
        lora = adapter as? LoRAState
    }

    /// Indices among the embedding group's tensors that train here (none, the tied token
    /// table, or all of them); a ZO runner leaves them out of its perturbations.
    public var firstOrderEmbeddingTensors: Set<Int> {
        if trainsEmbedding { return Set(model.embedding.layout.specs.indices) }
        return model.tiedTokenTable.map { [$0] } ?? []
    }

    /// Runs blocks firstBlock..<L and the head on a pass that went through the blocks before.
    public func finish(_ pass: ForwardPass) throws -> ForwardResult {
        guard let embedding else { preconditionFailure("attach(embedding:adapter:) first") }
        guard isRecording else {
            for (i, buffer) in blocks.enumerated() { pass.block(firstBlock + i, buffer) }
            return try pass.finish(head: head, embedding: embedding)
        }
        let record = RecordedPass(pass, backend: backend)
        for (i, buffer) in blocks.enumerated() {
            let tape = try backend.allocate(max(1, model.blockTapeCount(rows: pass.context.batch.rows)) * 4, label: "block \(firstBlock + i) tape")
            record.tapes.append(tape)
            model.block(firstBlock + i, buffer, hidden: pass.hidden, context: pass.context, tape: tape)
        }
        let result = try pass.finish(head: head, embedding: embedding, recording: record.head)
        recorded.append(record)
        return result
    }

    /// Passes recorded since the last `backward`.
    public var recordedCount: Int { recorded.count }

    /// Backpropagates each recorded pass (in recording order) from its loss gradient,
    /// accumulating into the gradients, and drops each recording once it is done.
    ///
    /// Device memory it adds to the recordings: a workspace for the largest pass, and per pass
    /// in turn the logits' gradient [R, V], the token weights [R] and the hidden states'
    /// gradient [B·T, C] (`MemoryModel` counts these).
    public func backward(_ gradients: [LossGradient]) throws {
        defer { recorded.removeAll() }
        precondition(gradients.count == recorded.count, "one loss gradient per recorded pass")
        guard let embedding, let largest = recorded.map({ $0.pass.context.batch.rows }).max() else { return }
        let v = model.vocabSize, c = model.hiddenSize
        let workspace = try backend.allocate(model.workspaceCount(rows: largest) * 4, label: "backward workspace")
        defer { backend.free(workspace) }
        for gradient in gradients {
            let record = recorded.removeFirst()
            var temporary: [DeviceBuffer] = []
            defer { temporary.forEach(backend.free) }
            func keep(_ buffer: DeviceBuffer) -> DeviceBuffer {
                temporary.append(buffer)
                return buffer
            }
            let pass = record.pass, head = record.head, rows = head.rows, total = pass.context.batch.rows
            precondition(rows > 0 && gradient.tokenWeights.count == rows, "one token weight per head row")
            let context = StageContext(backend: backend, batch: pass.context.batch, workspace: workspace, constants: pass.context.constants,
                                       cache: nil, linearBackwardHook: lora)
            let gradLogits = keep(try backend.allocate(rows * v * 4, label: "logits' gradient [R, V]"))
            backend.crossEntropyBackward(logits: head.logits!, targets: head.selectedTargets ?? pass.context.batch.targets,
                                         weights: keep(try backend.upload(gradient.tokenWeights, label: "token loss weights")),
                                         gradLogits: gradLogits, rows: rows, vocab: v)
            if !gradient.logitTerms.isEmpty {
                let terms = gradient.logitTerms
                backend.scatterAdd(keep(try backend.upload(terms.map(\.value), label: "logit gradient terms")),
                                   indices: keep(try backend.upload(terms.map { Int32($0.row * v + $0.column) }, label: "logit gradient positions")),
                                   count: terms.count, into: gradLogits)
            }
            let gradHidden = keep(try backend.allocate(total * c * 4, label: "hidden states' gradient [B, T, C]"))
            let gradHeadInput = head.selectedRows == nil ? gradHidden : keep(try backend.allocate(rows * c * 4, label: "selected rows' gradient [R, C]"))
            model.headBackward(self.head, embedding: embedding, gradHead: headGradient,
                               gradTokenTable: trainsEmbedding ? model.tiedTokenTable.map { tokenTableView(embeddingGradient!, $0) } : embeddingGradient,
                               tape: head.tape!, logits: head.logits!, gradLogits: gradLogits, gradHidden: gradHeadInput, rows: rows,
                               context: context,
                               backend: backend)
            if let selected = head.selectedRows {
                backend.zero(gradHidden, count: total * c)
                backend.scatterAddRows(gradHeadInput, width: c, indices: selected, count: rows, table: gradHidden, skipping: nil)
            }
            for i in blocks.indices.reversed() {
                model.blockBackward(firstBlock + i, blocks[i], gradients: blockGradients[i], tape: record.tapes[i], gradHidden: gradHidden,
                                    context: context, backend: backend)
            }
            if trainsEmbedding {
                try model.embedBackward(embedding, gradients: embeddingGradient!, gradHidden: gradHidden, context: context, backend: backend)
            }
            try backend.synchronize(backend.computeStream)
        }
    }

    /// The tied token table's part of an embedding-group-shaped buffer.
    private func tokenTableView(_ buffer: DeviceBuffer, _ index: Int) -> DeviceBuffer {
        let spec = model.embedding.layout.specs[index]
        return buffer.floats(spec.offset, spec.count)
    }

    /// Drops recorded passes without backpropagating (a step whose loss was not finite).
    public func discardRecording() { recorded.removeAll() }

    /// The accumulated gradients of every trained tensor, concatenated in `trainedTensors` order
    /// (a distributed run sums them over its processes, `setGradients`).
    public func gradientValues() throws -> [Float] {
        try trainedTensors.flatMap { try backend.read($0.gradient, count: $0.gradient.byteCount / 4, as: Float.self) }
    }

    /// Replaces the gradients with `values`, ordered as `gradientValues` returns them.
    public func setGradients(_ values: [Float]) throws {
        precondition(values.count == trainedTensors.reduce(0) { $0 + $1.gradient.byteCount / 4 }, "one value per gradient element")
        let host = try HostBuffer(byteCount: max(4, values.count * 4))
        values.withUnsafeBufferPointer { host.floats.update(from: $0.baseAddress!, count: values.count) }
        var offset = 0
        for tensor in trainedTensors {
            backend.upload(host, hostOffset: offset, to: tensor.gradient, byteCount: tensor.gradient.byteCount, on: backend.computeStream)
            offset += tensor.gradient.byteCount
        }
        try backend.synchronize(backend.computeStream)
    }

    /// Sets every gradient to zero.
    public func zeroGradients() {
        for (buffer, count) in zip(blockGradients, model.blocks[firstBlock...].map(\.layout.count)) { backend.zero(buffer, count: count) }
        backend.zero(headGradient, count: model.head.layout.count)
        if let embeddingGradient { backend.zero(embeddingGradient, count: trainedEmbeddingCount) }
        lora?.zeroFirstOrderGradients()
    }

    /// Called by the optimizer after it changed the trained tensors (a LoRA adapter's resting
    /// term follows its B).
    public func parametersChanged() { lora?.refreshFirstOrder() }

    private var trainedEmbeddingCount: Int {
        trainsEmbedding ? model.embedding.layout.count : model.tiedTokenTable.map { model.embedding.layout.specs[$0].count } ?? 0
    }

    /// Every tensor trained here with its device values and gradient, for an optimizer (with a
    /// LoRA adapter: its factors in the tail's blocks alone).
    public var trainedTensors: [TrainedTensor] {
        if let lora { return lora.firstOrderTensors }
        var tensors: [TrainedTensor] = []
        func add(values: DeviceBuffer, gradient: DeviceBuffer, specs: [ParameterSpec], gradientOffset: (ParameterSpec) -> Int) {
            for spec in specs {
                tensors.append(TrainedTensor(name: spec.name, values: values.floats(spec.offset, spec.count),
                                             gradient: gradient.floats(gradientOffset(spec), spec.count),
                                             decays: spec.kind == .matrix || spec.kind == .embedding))
            }
        }
        for (i, group) in model.blocks[firstBlock...].enumerated() {
            add(values: blocks[i], gradient: blockGradients[i], specs: group.layout.specs, gradientOffset: \.offset)
        }
        add(values: head, gradient: headGradient, specs: model.head.layout.specs, gradientOffset: \.offset)
        if let embedding, let embeddingGradient {
            let specs = firstOrderEmbeddingTensors.sorted().map { model.embedding.layout.specs[$0] }
            add(values: embedding, gradient: embeddingGradient, specs: specs,
                gradientOffset: { trainsEmbedding ? $0.offset : 0 })
        }
        return tensors
    }

    /// Brings the trained blocks and the head into the model's host groups (the runner
    /// copies the embedding group).
    public func copyParametersToHost() throws {
        for (group, buffer) in zip(model.blocks[firstBlock...], blocks) + [(model.head, head)] {
            backend.download(buffer, to: group.storage, hostOffset: 0, byteCount: group.layout.byteCount, on: backend.computeStream)
        }
        try backend.synchronize(backend.computeStream)
    }
}

/// A parameter tensor trained first-order: views of its values and gradient on the device.
public struct TrainedTensor: Sendable {
    public let name: String
    public let values: DeviceBuffer
    public let gradient: DeviceBuffer
    /// Whether weight decay applies (matrices and embeddings).
    public let decays: Bool
}

/// A pass recorded for backpropagation, with its block tapes and head recording.
private final class RecordedPass {
    let pass: ForwardPass
    let head: HeadRecording
    var tapes: [DeviceBuffer] = []
    private let backend: any Backend

    init(_ pass: ForwardPass, backend: any Backend) {
        self.pass = pass
        self.backend = backend
        head = HeadRecording(backend: backend)
    }

    deinit { tapes.forEach(backend.free) }
}
