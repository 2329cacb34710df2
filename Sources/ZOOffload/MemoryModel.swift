import ZOCore
import ZOModels

/// The device and host bytes and the link traffic of one ZO step (the estimator's streams of
/// forward passes over one batch of B sequences of T tokens: two for MeZO, N + 1 or 2N for a
/// population), predicted from the model's shape alone.
///
/// Device figures count what the runners allocate, each allocation rounded up as the arena
/// reserves it, so they predict the arena's high-water mark (`DeviceMemoryStats.highWater`).
public struct StepMemory: Sendable, Equatable, Codable {
    /// Parameters that stay on the device: embedding, head, resident blocks (all blocks
    /// when nothing streams) and the constant tables.
    public var residentParameterBytes: Int
    /// S rotating slots of `slotBytes` each (the largest streamed block in the link's format),
    /// and for a low-bit link the one fp32 block they decode into.
    public var slots: Int
    public var slotBytes: Int
    public var decodedBlockBytes = 0
    /// Activation workspace shared by the passes.
    public var workspaceBytes: Int
    /// Token batches and hidden states of the passes alive together (one per stream for an
    /// offloaded step, whose streams go through the blocks side by side; one for a resident step).
    public var passBytes: Int
    /// Logits and token losses of the head, one pass at a time.
    public var headBytes: Int
    /// Host bytes: the model's fp32 groups, and the low-bit masters of streamed blocks.
    public var hostModelBytes: Int
    public var hostMasterBytes: Int
    /// Bytes over the link per step, host → device and back.
    public var uploadBytesPerStep: Int
    public var downloadBytesPerStep: Int
    /// A first-order part (hybrid runs): its blocks and head, their gradients (and the
    /// embedding's or the tied table's), the optimizer state kept on the device, the recorded
    /// passes' tapes and logits, and what backpropagating one pass allocates on top.
    public var firstOrderParameterBytes = 0
    public var gradientBytes = 0
    public var optimizerStateBytes = 0
    public var recordingBytes = 0
    public var backwardBytes = 0
    /// The low-rank estimator's factors (V, Vᵀ, A, a B per stream), the x·V scratch, and offloaded
    /// blocks' biases and norms kept on the device.
    public var lowRankBytes = 0

    /// The predicted peak of device memory (for a first-order part: while a pass is
    /// backpropagated, every recording alive, the forward's head buffers freed).
    public var devicePeakBytes: Int {
        residentParameterBytes + slots * slotBytes + decodedBlockBytes + workspaceBytes + passBytes + headBytes
            + firstOrderParameterBytes + gradientBytes + optimizerStateBytes + recordingBytes + backwardBytes + lowRankBytes
    }

    /// Host memory the run needs (RAM, or scratch files with `--host-storage`).
    public var hostBytes: Int { hostModelBytes + hostMasterBytes }
}

/// What a run trains first-order, as the memory model needs it.
public struct FirstOrderPlan: Sendable, Equatable, Codable {
    /// k deepest blocks (with the final norm and the head).
    public var blocks: Int
    /// Whether the whole embedding trains first-order (else only a tied token table does).
    public var embedding: Bool
    /// Whether the other blocks take ZO steps (a recorded pass per stream) or stay frozen.
    public var zeroOrder: Bool
    /// Optimizer state buffers per trained tensor kept on the device (AdamW 2, SGD with
    /// momentum 1; 0 when the state lives on the host).
    public var deviceStateBuffers: Int

    public init(blocks: Int, embedding: Bool = false, zeroOrder: Bool, deviceStateBuffers: Int) {
        self.blocks = blocks
        self.embedding = embedding
        self.zeroOrder = zeroOrder
        self.deviceStateBuffers = deviceStateBuffers
    }
}

/// Predictions of `StepMemory` for the resident and the offloaded runner.
public enum MemoryModel {
    /// A ZO step of `OffloadedRunner` under `plan`, with `streams` evaluations.
    public static func offloadedStep(_ shape: ModelShape, plan: ResidencyPlan, batch: Int, tokens: Int, streams: Int = 2) -> StepMemory {
        let streamed = plan.streamedBlocks(count: shape.blocks.count)
        let masterBytes = streamed.reduce(0) { $0 + plan.encodedBytes(of: shape.blocks[$1]) }
        var step = StepMemory(
            residentParameterBytes: plan.residentBytes(for: shape) + constantBytes(shape),
            slots: plan.slotCount(for: shape), slotBytes: plan.slotBytes(for: shape),
            workspaceBytes: workspaceBytes(shape, rows: batch * tokens),
            passBytes: streams * ForwardPass.deviceBytes(rows: batch * tokens, hiddenSize: shape.hiddenSize),
            headBytes: ForwardPass.headBytes(rows: batch * tokens, vocabSize: shape.vocabSize),
            hostModelBytes: shape.parameterCount * 4, hostMasterBytes: plan.format == .fp32 ? 0 : masterBytes,
            uploadBytesPerStep: masterBytes, downloadBytesPerStep: masterBytes)
        step.decodedBlockBytes = plan.decodedBlockBytes(for: shape)
        return step
    }

    /// A ZO step of `ResidentRunner`: every group on the device, the ± passes one after the
    /// other, nothing over the link.
    public static func residentStep(_ shape: ModelShape, batch: Int, tokens: Int) -> StepMemory {
        let groups = ([shape.embedding, shape.head] + shape.blocks).reduce(0) { $0 + DeviceArena.reservedSize($1.byteCount) }
        return StepMemory(
            residentParameterBytes: groups + constantBytes(shape), slots: 0, slotBytes: 0,
            workspaceBytes: workspaceBytes(shape, rows: batch * tokens),
            passBytes: ForwardPass.deviceBytes(rows: batch * tokens, hiddenSize: shape.hiddenSize),
            headBytes: ForwardPass.headBytes(rows: batch * tokens, vocabSize: shape.vocabSize),
            hostModelBytes: shape.parameterCount * 4, hostMasterBytes: 0, uploadBytesPerStep: 0, downloadBytesPerStep: 0)
    }

    /// A step with the deepest `firstOrder.blocks` blocks (and the head) trained first-order:
    /// offloaded by `plan` (whose `firstOrderBlocks` must match), or resident when it is nil.
    /// With ZO on, every stream's pass is recorded; with ZO off, one plain pass.
    public static func firstOrderStep(_ shape: ModelShape, plan: ResidencyPlan?, batch: Int, tokens: Int,
                                      firstOrder: FirstOrderPlan, streams: Int = 2) -> StepMemory {
        let k = min(firstOrder.blocks, shape.blocks.count), first = shape.blocks.count - k
        let rows = batch * tokens
        var step: StepMemory
        if let plan {
            precondition(plan.firstOrderBlocks == k, "the plan's first-order blocks and the tail's differ")
            step = offloadedStep(shape, plan: plan, batch: batch, tokens: tokens, streams: streams)
        } else {
            step = residentStep(shape, batch: batch, tokens: tokens)
            step.residentParameterBytes = ([shape.embedding] + shape.blocks[..<first]).reduce(0) { $0 + DeviceArena.reservedSize($1.byteCount) }
                + constantBytes(shape)
        }
        let trained = Array(shape.blocks[first...]) + [shape.head]
        let groupBytes = trained.reduce(0) { $0 + DeviceArena.reservedSize($1.byteCount) }
        let embeddingCounts = firstOrder.embedding ? shape.embedding.specs.map(\.count) : shape.tiedTokenTable.map { [$0.count] } ?? []
        let embeddingGradient = firstOrder.embedding ? shape.embedding.count : embeddingCounts.first
        let tensorCounts = trained.flatMap { $0.specs.map(\.count) } + embeddingCounts
        let passes = firstOrder.zeroOrder ? streams : 1
        step.firstOrderParameterBytes = groupBytes
        step.gradientBytes = groupBytes + (embeddingGradient.map { DeviceArena.reservedSize(max(1, $0) * 4) } ?? 0)
        step.optimizerStateBytes = firstOrder.deviceStateBuffers * tensorCounts.reduce(0) { $0 + DeviceArena.reservedSize($1 * 4) }
        step.passBytes = passes * ForwardPass.deviceBytes(rows: rows, hiddenSize: shape.hiddenSize)
        step.recordingBytes = passes * (k * DeviceArena.reservedSize(max(1, rows * shape.blockTapePerRow) * 4)
                                        + DeviceArena.reservedSize(max(1, rows * shape.headTapePerRow) * 4)
                                        + DeviceArena.reservedSize(rows * shape.vocabSize * 4))
        step.headBytes = 0
        step.backwardBytes = DeviceArena.reservedSize(rows * shape.vocabSize * 4) + DeviceArena.reservedSize(rows * 4)
            + DeviceArena.reservedSize(rows * shape.hiddenSize * 4)
        return step
    }

    /// A ZO step whose `streams` evaluations differ only in the low-rank estimator's terms (it
    /// trains the low-rank weights alone) and so run stacked (`StreamStack`): one pass over
    /// streams·B sequences, offloaded by `plan` or resident when it is nil, with the estimator's
    /// state (no first-order part).
    public static func stackedLowRankStep(_ shape: ModelShape, plan: ResidencyPlan?, batch: Int, tokens: Int, rank: Int,
                                          resampleEvery: Int, streams: Int) -> StepMemory {
        let sequences = streams * batch
        let step = plan.map { offloadedStep(shape, plan: $0, batch: sequences, tokens: tokens, streams: 1) }
            ?? residentStep(shape, batch: sequences, tokens: tokens)
        return withLowRank(step, shape, plan: plan, batch: sequences, tokens: tokens, rank: rank, resampleEvery: resampleEvery,
                           streams: streams)
    }

    /// `step` with the low-rank estimator of rank r, V resampled every ν steps, on the blocks
    /// the runner holds (those before `firstOrderBlocks`): its device state added and,
    /// offloaded by `plan`, the write-back traffic of one fold per ν steps instead of one sweep
    /// per step (amortized per step; each fold sweep also uploads the blocks once more).
    public static func withLowRank(_ step: StepMemory, _ shape: ModelShape, plan: ResidencyPlan?, firstOrderBlocks: Int = 0,
                                   batch: Int, tokens: Int, rank r: Int, resampleEvery: Int, streams: Int = 2) -> StepMemory {
        var step = step
        let runnerBlocks = shape.blocks.count - firstOrderBlocks
        var factorBytes = 0, widest = 0
        var lowRankCounts = [Int](repeating: 0, count: shape.blocks.count)
        for block in 0..<runnerBlocks {
            for linear in shape.blockLinears {
                let specs = shape.blocks[block].specs, parts = linear.weightIndices(in: specs)
                let m = parts.count, o = linear.outputs, k = linear.inputs
                lowRankCounts[block] += parts.reduce(0) { $0 + specs[$1].count }
                widest = max(widest, m * r)
                factorBytes += 2 * DeviceArena.reservedSize(m * r * k * 4) + 2 * DeviceArena.reservedSize(o * r * 4)
                    + streams * DeviceArena.reservedSize(o * m * r * 4)
            }
        }
        let scratch = DeviceArena.reservedSize(max(1, batch * tokens * widest) * 4)
        let streamed = plan?.streamedBlocks(count: shape.blocks.count) ?? []
        let extras = streamed.reduce(0) { $0 + DeviceArena.reservedSize(max(1, shape.blocks[$1].count - lowRankCounts[$1]) * 4) }
        step.lowRankBytes = factorBytes + scratch + extras
        if plan != nil {
            let sweep = step.uploadBytesPerStep
            step.downloadBytesPerStep = sweep / resampleEvery
            step.uploadBytesPerStep = sweep + sweep / resampleEvery
        }
        return step
    }

    private static func constantBytes(_ shape: ModelShape) -> Int {
        DeviceArena.reservedSize(max(1, shape.constantCount) * 4)
    }

    private static func workspaceBytes(_ shape: ModelShape, rows: Int) -> Int {
        DeviceArena.reservedSize(rows * shape.workspacePerRow * 4)
    }
}
