import ZOCore
import ZOModels

/// What stays in device memory and how the other blocks share it: the embedding and head
/// stages and `residentBlocks` stay resident; every other block streams from host memory
/// through `slots` rotating device buffers, each as large as the largest streamed block (in the
/// link's format; a low-bit block decodes into one fp32 block buffer the slots share).
public struct ResidencyPlan: Sendable, Equatable, Codable {
    /// S, the rotating block buffers (at least 1; 2 lets the next upload overlap compute).
    public var slots: Int
    /// Blocks that stay resident (indices from 0).
    public var residentBlocks: Set<Int>
    /// Whether copies overlap compute; false waits for every copy (a check, not a mode to run).
    public var overlap: Bool
    /// How streamed blocks are kept in host memory and sent: fp32, or a low-bit format the
    /// device decodes on arrival and encodes before write-back.
    public var format: LinkFormat
    /// Whether a low-bit write-back rounds stochastically (seeded by the step, so runs stay
    /// reproducible) rather than to nearest: small ZO updates survive in expectation.
    public var stochasticRounding: Bool
    /// k: the deepest blocks, trained first-order by a `FirstOrderTail` that keeps them (and
    /// the head) resident; the runner streams only blocks before them.
    public var firstOrderBlocks: Int
    /// With a low-bit format: a streamed block stays encoded on the device, tensor by tensor
    /// (`TensorChunks`), and is decoded one fused linear at a time (its biases and norms at
    /// once), so the decoded buffer holds the largest linear instead of the whole block.
    public var decodeByTensor: Bool

    public init(slots: Int = 2, residentBlocks: Set<Int> = [], overlap: Bool = true, format: LinkFormat = .fp32,
                stochasticRounding: Bool = true, firstOrderBlocks: Int = 0, decodeByTensor: Bool = false) {
        self.slots = slots
        self.residentBlocks = residentBlocks
        self.overlap = overlap
        self.format = format
        self.stochasticRounding = stochasticRounding
        self.firstOrderBlocks = firstOrderBlocks
        self.decodeByTensor = decodeByTensor
    }

    /// Whether streamed blocks stay encoded tensor by tensor (`decodeByTensor` with a low-bit format).
    public var isTensorwise: Bool { decodeByTensor && format != .fp32 }

    /// Bytes of `block` as it crosses the link and sits in host memory and in a slot.
    public func encodedBytes(of block: ParameterLayout) -> Int {
        isTensorwise ? TensorChunks(block, format: format).byteCount : format.encodedBytes(block.count)
    }

    /// Blocks the runner itself holds, resident or streamed (those before the first-order ones).
    public func runnerBlockCount(of count: Int) -> Int { max(0, count - firstOrderBlocks) }

    /// The blocks that stream, in order.
    public func streamedBlocks(of model: any CausalLM) -> [Int] { streamedBlocks(count: model.blocks.count) }

    /// The blocks that stream, in order, of a model with `count` blocks.
    public func streamedBlocks(count: Int) -> [Int] {
        (0..<runnerBlockCount(of: count)).filter { !residentBlocks.contains($0) }
    }

    /// Device bytes the plan's parameters occupy: resident groups, S slots and, for a
    /// low-bit format, the decoded block.
    public func parameterBytes(for shape: ModelShape) -> Int {
        residentBytes(for: shape) + slotCount(for: shape) * slotBytes(for: shape) + decodedBlockBytes(for: shape)
    }

    /// Device bytes of the runner's groups that stay: embedding, head (unless a first-order
    /// tail holds it) and the resident blocks.
    public func residentBytes(for shape: ModelShape) -> Int {
        ([shape.embedding] + (firstOrderBlocks > 0 ? [] : [shape.head]) + residentBlocks.sorted().map { shape.blocks[$0] })
            .reduce(0) { $0 + DeviceArena.reservedSize($1.byteCount) }
    }

    /// Slots allocated: S, or fewer when fewer blocks stream.
    public func slotCount(for shape: ModelShape) -> Int { min(slots, streamedBlocks(count: shape.blocks.count).count) }

    /// Device bytes of one slot: the largest streamed block in the link's format.
    public func slotBytes(for shape: ModelShape) -> Int {
        DeviceArena.reservedSize(streamedBlocks(count: shape.blocks.count).map { encodedBytes(of: shape.blocks[$0]) }.max() ?? 0)
    }

    /// Device bytes of the fp32 buffer a low-bit format decodes into (one, shared by the
    /// slots): the largest streamed block, or tensor by tensor its biases and norms and largest
    /// fused linear; 0 for fp32 or when nothing streams.
    public func decodedBlockBytes(for shape: ModelShape) -> Int {
        let streamed = streamedBlocks(count: shape.blocks.count).map { shape.blocks[$0] }
        guard format != .fp32, !streamed.isEmpty else { return 0 }
        return DeviceArena.reservedSize(4 * (isTensorwise ? tensorwiseSizes(for: shape).decodedCount : streamed.map(\.count).max()!))
    }

    /// The sizes a tensorwise block decodes, over the streamed blocks of `shape`.
    func tensorwiseSizes(for shape: ModelShape) -> TensorwiseSizes {
        TensorwiseSizes(blocks: streamedBlocks(count: shape.blocks.count).map { shape.blocks[$0] }, linears: shape.blockLinears)
    }

    /// Checks the plan against `model` (indices in range, at least one slot when a block
    /// streams).
    public func validate(for model: any CausalLM) throws(OffloadError) {
        if let bad = residentBlocks.first(where: { !model.blocks.indices.contains($0) }) {
            throw .invalidPlan("resident block \(bad) does not exist (the model has \(model.blocks.count) blocks, 0–\(model.blocks.count - 1))")
        }
        guard (0...model.blocks.count).contains(firstOrderBlocks) else {
            throw .invalidPlan("\(firstOrderBlocks) first-order blocks asked of a model with \(model.blocks.count)")
        }
        if let bad = residentBlocks.first(where: { $0 >= runnerBlockCount(of: model.blocks.count) }) {
            throw .invalidPlan("block \(bad) is trained first-order (resident with the tail); it cannot also be a resident ZO block")
        }
        guard slots >= 1 else { throw .invalidPlan("at least one slot is needed, got \(slots)") }
        if decodeByTensor, model.blockLinears.isEmpty { throw .invalidPlan("decoding by tensor needs the architecture's fused linears") }
    }
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
