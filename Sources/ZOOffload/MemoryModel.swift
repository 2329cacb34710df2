import ZOCore
import ZOModels

/// The device and host bytes and the link traffic of one ZO step (a dual forward over one
/// batch of B sequences of T tokens), predicted from the model's shape alone.
///
/// Device figures count what the runners allocate, each allocation rounded up as the arena
/// reserves it, so they predict the arena's high-water mark (`DeviceMemoryStats.highWater`).
public struct StepMemory: Sendable, Equatable, Codable {
    /// Parameters that stay on the device: embedding, head, resident blocks (all blocks
    /// when nothing streams) and the constant tables.
    public var residentParameterBytes: Int
    /// S rotating slots of `slotBytes` each (fp32 block plus, for low-bit links, staging).
    public var slots: Int
    public var slotBytes: Int
    /// Activation workspace shared by the passes.
    public var workspaceBytes: Int
    /// Token batches and hidden states of the passes alive together (two for an offloaded
    /// step, whose ± passes stream side by side; one for a resident step).
    public var passBytes: Int
    /// Logits and token losses of the head, one pass at a time.
    public var headBytes: Int
    /// Host bytes: the model's fp32 groups, and the low-bit masters of streamed blocks.
    public var hostModelBytes: Int
    public var hostMasterBytes: Int
    /// Bytes over the link per step, host → device and back.
    public var uploadBytesPerStep: Int
    public var downloadBytesPerStep: Int

    /// The predicted peak of device memory.
    public var devicePeakBytes: Int {
        residentParameterBytes + slots * slotBytes + workspaceBytes + passBytes + headBytes
    }

    /// Host memory the run needs (RAM, or scratch files with `--host-storage`).
    public var hostBytes: Int { hostModelBytes + hostMasterBytes }
}

/// Predictions of `StepMemory` for the resident and the offloaded runner.
public enum MemoryModel {
    /// A ZO step of `OffloadedRunner` under `plan`.
    public static func offloadedStep(_ shape: ModelShape, plan: ResidencyPlan, batch: Int, tokens: Int) -> StepMemory {
        let streamed = plan.streamedBlocks(count: shape.blocks.count)
        let masterBytes = streamed.reduce(0) { $0 + plan.format.encodedBytes(shape.blocks[$1].count) }
        return StepMemory(
            residentParameterBytes: plan.residentBytes(for: shape) + constantBytes(shape),
            slots: plan.slotCount(for: shape), slotBytes: plan.slotBytes(for: shape),
            workspaceBytes: workspaceBytes(shape, rows: batch * tokens),
            passBytes: 2 * ForwardPass.deviceBytes(rows: batch * tokens, hiddenSize: shape.hiddenSize),
            headBytes: ForwardPass.headBytes(rows: batch * tokens, vocabSize: shape.vocabSize),
            hostModelBytes: shape.parameterCount * 4, hostMasterBytes: plan.format == .fp32 ? 0 : masterBytes,
            uploadBytesPerStep: masterBytes, downloadBytesPerStep: masterBytes)
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

    private static func constantBytes(_ shape: ModelShape) -> Int {
        DeviceArena.reservedSize(max(1, shape.constantCount) * 4)
    }

    private static func workspaceBytes(_ shape: ModelShape, rows: Int) -> Int {
        DeviceArena.reservedSize(rows * shape.workspacePerRow * 4)
    }
}
