import ZOCore

/// What a forward pass should bring back to the host besides the per-token losses.
public struct ForwardOutputs: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The logits [B, T, V].
    public static let logits = ForwardOutputs(rawValue: 1)
    /// The arg-max token of the logits at every position [B, T].
    public static let argmax = ForwardOutputs(rawValue: 2)
}

/// The result of a forward pass over a `TokenBatch`, for every position [B, T] or for the
/// selected rows only (then [R]).
public struct ForwardResult: Sendable {
    public let batch: TokenBatch
    /// The flat positions (b·T + t) the outputs are for; nil for all of them.
    public let rows: [Int]?
    /// Next-token cross-entropy per position; 0 where there is no target.
    public let tokenLosses: [Float]
    /// [rows, V] when requested.
    public let logits: [Float]?
    /// [rows] when requested.
    public let argmax: [Int32]?

    /// Hugging Face's loss: the mean over every position with a target in the batch
    /// (for a forward over all rows).
    public var meanLoss: Double {
        precondition(rows == nil, "meanLoss needs every row")
        let count = batch.targetCount
        return count == 0 ? .nan : tokenLosses.reduce(0.0) { $0 + Double($1) } / Double(count)
    }

    /// The mean loss of sequence `b` alone, the sum of its token losses, and its number of targets.
    public func sequenceLoss(_ b: Int) -> (loss: Double, sum: Double, targets: Int) {
        precondition(rows == nil, "sequenceLoss needs every row")
        let range = b * batch.tokens..<(b + 1) * batch.tokens
        let targets = batch.targets[range].filter { $0 >= 0 }.count
        let sum = tokenLosses[range].reduce(0.0) { $0 + Double($1) }
        return (targets == 0 ? .nan : sum / Double(targets), sum, targets)
    }
}

/// Runs a model with every parameter group resident in device memory: the reference path
/// that offloaded and other runs are checked against.
///
/// With a tail (`RunnerTail`: a hybrid run's first-order part), the runner holds the embedding
/// and the blocks before the tail's first block; the tail runs the rest of every pass, and the
/// runner's perturbations leave out what the tail trains.
// @unchecked Sendable: confined to the thread that drives training (or inference) — it calls every method and
// sets `stacksStreams`, the one `var`; the rest is `let`s, and the device work runs on the compute stream in order.
public final class ResidentRunner: ModelRunner, @unchecked Sendable {
    public let model: any CausalLM
    public let backend: any Backend
    /// Device copies of embedding, blocks…, head, in `model.groups` order (without the
    /// groups a tail holds).
    public let deviceGroups: [DeviceBuffer]
    /// The model's constant tables on the device.
    public let constants: DeviceBuffer
    public let tail: (any RunnerTail)?
    public let adapter: (any LinearAdapter)?
    /// Whether streams that differ only in the adapter's terms go through the model as one
    /// stacked pass (`StreamStack`); off, each stream runs its own (the same numbers up to the
    /// GEMMs' row blocking).
    public var stacksStreams = true
    private let tensors: [[PerturbedTensor]]

    /// Uploads every parameter group (those before the tail's when there is one). With an
    /// `adapter` factory, the blocks' fused linears add its adapter's terms (and full
    /// perturbation passes leave the weights it adapts out).
    public init(model: any CausalLM, backend: any Backend, tail: (any RunnerTail)? = nil, adapter factory: (any LinearAdapterFactory)? = nil)
        throws {
        self.model = model
        self.backend = backend
        self.tail = tail
        let groups = tail.map { Array(model.groups[...$0.firstBlock]) } ?? model.groups
        var buffers: [DeviceBuffer] = []
        for group in groups {
            let buffer = try backend.allocate(group.layout.byteCount, label: group.label)
            backend.upload(group.storage, hostOffset: 0, to: buffer, byteCount: group.layout.byteCount, on: backend.computeStream)
            buffers.append(buffer)
        }
        constants = try backend.upload(model.constants.isEmpty ? [0] : model.constants, label: "model constants")
        try backend.synchronize(backend.computeStream)
        deviceGroups = buffers
        do {
            adapter = try factory?.makeAdapter(model: model, blockCount: tail?.firstBlock ?? model.blocks.count, backend: backend)
        } catch {
            // `deinit` does not run for an object that never became whole.
            for buffer in buffers + [constants] { backend.free(buffer) }
            throw error
        }
        tensors = model.perturbedTensors(leavingOut: tail?.firstOrderEmbeddingTensors ?? [], ids: adapter?.adaptedTensorIDs ?? [])
        tail?.attach(embedding: buffers[0], adapter: adapter)
    }

    deinit {
        for buffer in deviceGroups + [constants] { backend.free(buffer) }
    }

    /// Blocks before the tail's (all without one).
    private var blockCount: Int { tail?.firstBlock ?? model.blocks.count }

    public func foldAdapter() throws {
        guard let adapter = adapter as? any FoldingAdapter else { return }
        for index in 0..<blockCount { adapter.fold(block: index, into: deviceGroups[1 + index]) }
        try backend.synchronize(backend.computeStream)
    }

    public func perturb(_ pass: PerturbationPass, snapshot: SnapshotRequest?) throws {
        guard !pass.isIdentity || snapshot != nil else { return }
        for (group, buffer) in deviceGroups.enumerated() {
            backend.perturb(buffer, tensors: tensors[group], terms: pass.terms, decayFactor: pass.decayFactor, kind: pass.kind,
                            snapshot: snapshot?.group(group))
        }
        if snapshot != nil { try backend.synchronize(backend.computeStream) }
    }

    /// Streams that differ only in the adapter's terms run stacked (`StreamStack`) unless
    /// `stacksStreams` is off.
    public func forward(_ requests: [ForwardRequest], streams: [PerturbedStream], snapshot: SnapshotRequest?) throws -> [[ForwardResult]] {
        if stacksStreams, tail == nil, snapshot == nil, let adapter, let stack = StreamStack(requests, streams: streams) {
            try adapter.reserve(rows: stack.requests.map { $0.batch.batchSize * $0.batch.tokens }.max() ?? 0)
            return stack.split(try stack.requests.map { try forward($0, hook: adapter.hook(streams: stack.streams)) })
        }
        try adapter?.reserve(rows: requests.map { $0.batch.batchSize * $0.batch.tokens }.max() ?? 0)
        return try streams.enumerated().map { s, stream in
            try perturb(stream.pass, snapshot: s == 0 ? snapshot : nil)
            guard stream.evaluated else { return [] }
            return try requests.map { request in
                try forward(request, hook: stream.adapterStream.flatMap { adapter?.hook(streams: $0..<$0 + 1) })
            }
        }
    }

    public func copyParametersToHost() throws {
        for (group, buffer) in zip(model.groups, deviceGroups) {
            backend.download(buffer, to: group.storage, hostOffset: 0, byteCount: group.layout.byteCount, on: backend.computeStream)
        }
        try backend.synchronize(backend.computeStream)
        try tail?.copyParametersToHost()
    }

    /// The head runs on the selected `rows` alone when they are given. The adapter adds its
    /// resting term (`LinearAdapter.restingHook`).
    public func forward(_ batch: TokenBatch, outputs: ForwardOutputs, cache: KVCache?, rows: [Int]?) throws -> ForwardResult {
        let hook = adapter?.restingHook()
        if hook != nil { try adapter?.reserve(rows: batch.batchSize * batch.tokens) }
        return try forward(ForwardRequest(batch, outputs: outputs, rows: rows), cache: cache, hook: hook)
    }

    private func forward(_ request: ForwardRequest, cache: KVCache? = nil, hook: (any LinearHook)?) throws -> ForwardResult {
        let batch = request.batch
        let workspace = try backend.allocate(model.workspaceCount(rows: batch.batchSize * batch.tokens) * 4, label: "activation workspace")
        defer { backend.free(workspace) }
        let pass = try ForwardPass(request, model: model, backend: backend, constants: constants, workspace: workspace, cache: cache,
                                   linearHook: hook)
        pass.embed(deviceGroups[0])
        for (index, parameters) in deviceGroups[1..<1 + blockCount].enumerated() {
            pass.block(index, parameters)
        }
        if let tail { return try tail.finish(pass) }
        return try pass.finish(head: deviceGroups.last!, embedding: deviceGroups[0])
    }
}
