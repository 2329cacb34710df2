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

    /// The mean loss of sequence `b` alone, and its number of targets.
    public func sequenceLoss(_ b: Int) -> (loss: Double, targets: Int) {
        precondition(rows == nil, "sequenceLoss needs every row")
        let range = b * batch.tokens..<(b + 1) * batch.tokens
        let targets = batch.targets[range].filter { $0 >= 0 }.count
        let sum = tokenLosses[range].reduce(0.0) { $0 + Double($1) }
        return (targets == 0 ? .nan : sum / Double(targets), targets)
    }
}

/// Runs a model with every parameter group resident in device memory: the reference path
/// that offloaded and other runs are checked against.
public final class ResidentRunner: ModelRunner, @unchecked Sendable {
    public let model: any CausalLM
    public let backend: any Backend
    /// Device copies of embedding, blocks…, head, in `model.groups` order.
    public let deviceGroups: [DeviceBuffer]
    /// The model's constant tables on the device.
    public let constants: DeviceBuffer
    private let tensors: [[PerturbedTensor]]

    /// Uploads every parameter group.
    public init(model: any CausalLM, backend: any Backend) throws {
        self.model = model
        self.backend = backend
        var buffers: [DeviceBuffer] = []
        for group in model.groups {
            let buffer = try backend.allocate(group.layout.byteCount, label: group.label)
            backend.upload(group.storage, hostOffset: 0, to: buffer, byteCount: group.layout.byteCount, on: backend.computeStream)
            buffers.append(buffer)
        }
        constants = try backend.upload(model.constants.isEmpty ? [0] : model.constants, label: "model constants")
        try backend.synchronize(backend.computeStream)
        deviceGroups = buffers
        tensors = model.perturbedTensors
    }

    deinit {
        for buffer in deviceGroups + [constants] { backend.free(buffer) }
    }

    public func perturb(_ pass: PerturbationPass) {
        guard !pass.isIdentity else { return }
        for (group, buffer) in deviceGroups.enumerated() {
            backend.perturb(buffer, tensors: tensors[group], terms: pass.terms, decayFactor: pass.decayFactor, kind: pass.kind)
        }
    }

    public func dualForward(_ requests: [ForwardRequest], plus: PerturbationPass, minus: PerturbationPass) throws
        -> (plus: [ForwardResult], minus: [ForwardResult]) {
        perturb(plus)
        let plusResults = try forward(requests)
        perturb(minus)
        return (plusResults, try forward(requests))
    }

    public func copyParametersToHost() throws {
        for (group, buffer) in zip(model.groups, deviceGroups) {
            backend.download(buffer, to: group.storage, hostOffset: 0, byteCount: group.layout.byteCount, on: backend.computeStream)
        }
        try backend.synchronize(backend.computeStream)
    }

    /// The head runs on the selected `rows` alone when they are given.
    public func forward(_ batch: TokenBatch, outputs: ForwardOutputs, cache: KVCache?, rows selected: [Int]?) throws -> ForwardResult {
        let rows = batch.batchSize * batch.tokens
        let past = cache?.length ?? 0
        if let cache, past + batch.tokens > cache.capacity || batch.batchSize != cache.batchSize {
            throw ModelError.sequenceTooLong(sequence: 0, length: past + batch.tokens, maximum: cache.capacity)
        }
        if let selected, let bad = selected.first(where: { !(0..<rows).contains($0) }) {
            throw ModelError.emptyBatch("selected row \(bad) is outside the batch's \(rows) positions")
        }
        let device = try DeviceTokenBatch(batch, positions: model.positions(for: batch, past: past), backend: backend)
        defer { device.free(on: backend) }
        let hidden = try backend.allocate(rows * model.hiddenSize * 4, label: "hidden states [B, T, C]")
        defer { backend.free(hidden) }
        let workspace = try backend.allocate(model.workspaceCount(rows: rows) * 4, label: "activation workspace")
        defer { backend.free(workspace) }

        let context = StageContext(backend: backend, batch: device, workspace: workspace, constants: constants, cache: cache)
        let embedding = deviceGroups[0]
        model.embed(embedding, hidden: hidden, context: context)
        for (index, parameters) in deviceGroups[1..<deviceGroups.count - 1].enumerated() {
            model.block(index, parameters, hidden: hidden, context: context)
        }
        cache?.length += batch.tokens

        // The head's input: every row, or the selected rows gathered into [R, C].
        var headRows = rows, headInput = hidden, targets = device.targets
        var gathered: [DeviceBuffer] = []
        defer { gathered.forEach(backend.free) }
        if let selected {
            headRows = selected.count
            let indices = try backend.upload(selected.map(Int32.init), label: "selected rows")
            headInput = try backend.allocate(max(1, headRows) * model.hiddenSize * 4, label: "selected hidden states [R, C]")
            targets = try backend.upload(selected.map { batch.targets[$0] }, label: "selected targets")
            gathered = [indices, headInput, targets]
            backend.gatherRows(table: hidden, width: model.hiddenSize, indices: indices, count: headRows, out: headInput, accumulate: false)
        }
        let logits = try backend.allocate(max(1, headRows) * model.vocabSize * 4, label: "logits [R, V]")
        defer { backend.free(logits) }
        let losses = try backend.allocate(max(1, headRows) * 4, label: "token losses [R]")
        defer { backend.free(losses) }
        model.head(deviceGroups.last!, embedding: embedding, hidden: headInput, logits: logits, rows: headRows, context: context)
        backend.crossEntropy(logits: logits, targets: targets, losses: losses, rows: headRows, vocab: model.vocabSize)

        var argmax: [Int32]?
        if outputs.contains(.argmax) {
            let indices = try backend.allocate(max(1, headRows) * 4, label: "arg-max [R]")
            defer { backend.free(indices) }
            backend.argmax(logits: logits, out: indices, rows: headRows, vocab: model.vocabSize)
            argmax = try backend.read(indices, count: headRows, as: Int32.self)
        }
        return ForwardResult(batch: batch, rows: selected,
                             tokenLosses: try backend.read(losses, count: headRows, as: Float.self),
                             logits: outputs.contains(.logits) ? try backend.read(logits, count: headRows * model.vocabSize) : nil,
                             argmax: argmax)
    }
}
