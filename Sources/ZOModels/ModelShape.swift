/// An architecture's sizes without its parameters: what the memory model predicts from.
///
/// It comes from a config alone (`OPTConfig.shape`, `LlamaConfig.shape`, so a 175B plan needs no 700 GB of
/// weights) or from a loaded model (`CausalLM.shape`); the two agree for the same config.
public struct ModelShape: Sendable, Equatable {
    /// The embedding stage's, every block's and the head's parameter layouts.
    public var embedding: ParameterLayout
    public var blocks: [ParameterLayout]
    public var head: ParameterLayout
    /// C and V.
    public var hiddenSize: Int
    public var vocabSize: Int
    /// Workspace floats per row of a pass (`CausalLM.workspaceCount(rows:)` / rows).
    public var workspacePerRow: Int
    /// Floats of the constant tables (`CausalLM.constants`).
    public var constantCount: Int
    /// Floats per row a block's and the head's first-order tapes hold (`TrainableLM`; 0 when
    /// the architecture cannot train first-order).
    public var blockTapePerRow: Int
    public var headTapePerRow: Int
    /// The index among the embedding's tensors of a token table the head reads too.
    public var tiedTokenTableIndex: Int?
    /// The blocks' fused linears (`CausalLM.blockLinears`).
    public var blockLinears: [BlockLinear]

    public init(embedding: ParameterLayout, blocks: [ParameterLayout], head: ParameterLayout, hiddenSize: Int, vocabSize: Int,
                workspacePerRow: Int, constantCount: Int, blockTapePerRow: Int = 0, headTapePerRow: Int = 0,
                tiedTokenTableIndex: Int? = nil, blockLinears: [BlockLinear] = []) {
        self.embedding = embedding
        self.blocks = blocks
        self.head = head
        self.hiddenSize = hiddenSize
        self.vocabSize = vocabSize
        self.workspacePerRow = workspacePerRow
        self.constantCount = constantCount
        self.blockTapePerRow = blockTapePerRow
        self.headTapePerRow = headTapePerRow
        self.tiedTokenTableIndex = tiedTokenTableIndex
        self.blockLinears = blockLinears
    }

    /// The tied token table's layout entry, if the head reads one.
    public var tiedTokenTable: ParameterSpec? { tiedTokenTableIndex.map { embedding.specs[$0] } }

    /// Parameters (tied weights counted once).
    public var parameterCount: Int { ([embedding, head] + blocks).reduce(0) { $0 + $1.count } }
}

extension CausalLM {
    /// This model's shape.
    public var shape: ModelShape {
        let trainable = self as? any TrainableLM
        return ModelShape(embedding: embedding.layout, blocks: blocks.map(\.layout), head: head.layout, hiddenSize: hiddenSize,
                          vocabSize: vocabSize, workspacePerRow: workspaceCount(rows: 1), constantCount: constants.count,
                          blockTapePerRow: trainable?.blockTapeCount(rows: 1) ?? 0, headTapePerRow: trainable?.headTapeCount(rows: 1) ?? 0,
                          tiedTokenTableIndex: tiedTokenTable, blockLinears: blockLinears)
    }
}

extension OPTConfig {
    /// The shape of an OPT model with this config.
    public var shape: ModelShape {
        let (layouts, offsets) = OPTOffsets.layouts(self)
        return ModelShape(embedding: layouts.embedding, blocks: layouts.blocks, head: layouts.head, hiddenSize: hiddenSize,
                          vocabSize: vocabSize, workspacePerRow: workspacePerRow, constantCount: 0,
                          blockTapePerRow: OPTTape.count(rows: 1, config: self), headTapePerRow: OPTHeadTape.count(rows: 1, config: self),
                          tiedTokenTableIndex: tieWordEmbeddings ? 0 : nil,
                          blockLinears: offsets.blockLinears(self))
    }

    /// Workspace floats per row (`OPTModel.Scratch`).
    var workspacePerRow: Int { OPTModel.Scratch.counts(rows: 1, config: self).reduce(0, +) }
}

extension LlamaConfig {
    /// The shape of a Llama-family model with this config.
    public var shape: ModelShape {
        let (layouts, offsets) = LlamaOffsets.layouts(self)
        return ModelShape(embedding: layouts.embedding, blocks: layouts.blocks, head: layouts.head, hiddenSize: hiddenSize,
                          vocabSize: vocabSize, workspacePerRow: workspacePerRow,
                          constantCount: rotaryTables * maxPositionEmbeddings * headSize,
                          blockTapePerRow: LlamaTape.count(rows: 1, config: self), headTapePerRow: headTapePerRow,
                          tiedTokenTableIndex: tieWordEmbeddings ? 0 : nil, blockLinears: offsets.blockLinears(self))
    }

    /// Workspace floats per row (`LlamaModel.Scratch`).
    var workspacePerRow: Int { LlamaModel.Scratch.counts(rows: 1, config: self).reduce(0, +) }

    /// Head tape floats per row: the final norm's input and output [C] each.
    var headTapePerRow: Int { 2 * hiddenSize }
}
