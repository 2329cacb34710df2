import ZOCore
import ZOModels

/// What stays in device memory and how the other blocks share it: the embedding and head
/// stages and `residentBlocks` stay resident; every other block streams from host memory
/// through `slots` rotating device buffers, each as large as the largest streamed block.
public struct ResidencyPlan: Sendable, Equatable, Codable {
    /// S, the rotating block buffers (at least 1; 2 lets the next upload overlap compute).
    public var slots: Int
    /// Blocks that stay resident (indices from 0).
    public var residentBlocks: Set<Int>
    /// Whether copies overlap compute; false waits for every copy (a check, not a mode to run).
    public var overlap: Bool

    public init(slots: Int = 2, residentBlocks: Set<Int> = [], overlap: Bool = true) {
        self.slots = slots
        self.residentBlocks = residentBlocks
        self.overlap = overlap
    }

    /// The blocks that stream, in order.
    public func streamedBlocks(of model: any CausalLM) -> [Int] {
        model.blocks.indices.filter { !residentBlocks.contains($0) }
    }

    /// Device bytes the plan's parameters occupy: resident groups plus S slots.
    public func parameterBytes(for model: any CausalLM) -> Int {
        let streamed = streamedBlocks(of: model)
        let resident = ([model.embedding, model.head] + model.blocks.indices.filter { residentBlocks.contains($0) }.map { model.blocks[$0] })
            .reduce(0) { $0 + padded($1.layout.byteCount) }
        let slotBytes = streamed.map { model.blocks[$0].layout.byteCount }.max() ?? 0
        return resident + min(slots, streamed.count) * padded(slotBytes)
    }

    /// Device bytes of one forward pass's activations over `rows` tokens beyond the
    /// parameters: hidden states, workspace, logits and losses (padding included).
    public static func activationBytes(for model: any CausalLM, rows: Int, headRows: Int) -> Int {
        padded(rows * model.hiddenSize * 4) + padded(model.workspaceCount(rows: rows) * 4) + padded(headRows * model.vocabSize * 4)
            + 4 * padded(rows * 4) + padded(headRows * 4)
    }

    /// Checks the plan against `model` (indices in range, at least one slot when a block
    /// streams).
    public func validate(for model: any CausalLM) throws(OffloadError) {
        if let bad = residentBlocks.first(where: { !model.blocks.indices.contains($0) }) {
            throw .invalidPlan("resident block \(bad) does not exist (the model has \(model.blocks.count) blocks, 0–\(model.blocks.count - 1))")
        }
        guard slots >= 1 else { throw .invalidPlan("at least one slot is needed, got \(slots)") }
    }
}

/// Bytes the arena reserves for `bytes`.
func padded(_ bytes: Int) -> Int {
    let alignment = DeviceArena.alignment
    return max(alignment, (bytes + alignment - 1) / alignment * alignment)
}

/// Why a model cannot be offloaded as asked.
public enum OffloadError: Error, CustomStringConvertible, Equatable {
    case invalidPlan(String)
    /// The plan needs `needed` bytes of device memory; `available` are free.
    case doesNotFit(needed: Int, available: Int, detail: String)

    public var description: String {
        switch self {
        case .invalidPlan(let why): "offload plan: \(why)"
        case .doesNotFit(let needed, let available, let detail):
            "offload plan needs \(ByteCount(needed)) of device memory but \(ByteCount(available)) is available (\(detail))"
        }
    }
}
