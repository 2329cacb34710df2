/// OPT's parameter groups and the element offsets the stage functions read.
///
/// Within a block, q/k/v weights are adjacent ([3C, C]) and so are their biases ([3C]), so the
/// three projections run as one GEMM.
struct OPTOffsets: Sendable {
    struct Embedding: Sendable {
        let tokens: Int
        let positions: Int
        let projectIn: Int?
    }

    struct Block: Sendable {
        let qkvWeight: Int, qkvBias: Int?
        let outWeight: Int, outBias: Int?
        let norm1Weight: Int?, norm1Bias: Int?
        let fc1Weight: Int, fc1Bias: Int?
        let fc2Weight: Int, fc2Bias: Int?
        let norm2Weight: Int?, norm2Bias: Int?
    }

    struct Head: Sendable {
        let hasFinalNorm: Bool
        let normWeight: Int?, normBias: Int?
        let projectOut: Int?
        let untiedHead: Int?
    }

    let embedding: Embedding
    let block: Block
    let head: Head

    static let decoder = "model.decoder."

    /// The layouts of the embedding stage, every block and the head.
    static func layouts(_ config: OPTConfig) -> (embedding: ParameterLayout, blocks: [ParameterLayout], head: ParameterLayout) {
        let c = config.hiddenSize, d = config.embedDim, f = config.ffnDim
        var embedding = ParameterLayout()
        embedding.add(decoder + "embed_tokens.weight", [config.vocabSize, d], .embedding)
        embedding.add(decoder + "embed_positions.weight", [config.maxPositionEmbeddings + OPTConfig.positionOffset, c], .embedding)
        if d != c { embedding.add(decoder + "project_in.weight", [c, d], .matrix) }

        let blocks = (0..<config.numHiddenLayers).map { i in
            let p = decoder + "layers.\(i)."
            var layout = ParameterLayout()
            for name in ["q_proj", "k_proj", "v_proj"] { layout.add(p + "self_attn.\(name).weight", [c, c], .matrix) }
            if config.enableBias {
                for name in ["q_proj", "k_proj", "v_proj"] { layout.add(p + "self_attn.\(name).bias", [c], .bias) }
            }
            layout.add(p + "self_attn.out_proj.weight", [c, c], .matrix)
            if config.enableBias { layout.add(p + "self_attn.out_proj.bias", [c], .bias) }
            addNorm(&layout, p + "self_attn_layer_norm", c, config)
            layout.add(p + "fc1.weight", [f, c], .matrix)
            if config.enableBias { layout.add(p + "fc1.bias", [f], .bias) }
            layout.add(p + "fc2.weight", [c, f], .matrix)
            if config.enableBias { layout.add(p + "fc2.bias", [c], .bias) }
            addNorm(&layout, p + "final_layer_norm", c, config)
            return layout
        }

        var head = ParameterLayout()
        if config.hasFinalLayerNorm { addNorm(&head, decoder + "final_layer_norm", c, config) }
        if d != c { head.add(decoder + "project_out.weight", [d, c], .matrix) }
        if !config.tieWordEmbeddings { head.add("lm_head.weight", [config.vocabSize, d], .matrix) }
        return (embedding, blocks, head)
    }

    private static func addNorm(_ layout: inout ParameterLayout, _ name: String, _ c: Int, _ config: OPTConfig) {
        guard config.layerNormElementwiseAffine else { return }
        layout.add(name + ".weight", [c], .norm)
        layout.add(name + ".bias", [c], .norm)
    }

    /// Offsets read from the layouts (block 0 stands for all blocks: their layouts differ
    /// only in names).
    init(config: OPTConfig, embedding: ParameterLayout, block: ParameterLayout, head: ParameterLayout) {
        func find(_ layout: ParameterLayout, _ suffix: String) -> Int? {
            layout.specs.first { $0.name.hasSuffix(suffix) }?.offset
        }
        self.embedding = Embedding(tokens: find(embedding, "embed_tokens.weight")!,
                                   positions: find(embedding, "embed_positions.weight")!,
                                   projectIn: find(embedding, "project_in.weight"))
        self.block = Block(qkvWeight: find(block, "q_proj.weight")!, qkvBias: find(block, "q_proj.bias"),
                           outWeight: find(block, "out_proj.weight")!, outBias: find(block, "out_proj.bias"),
                           norm1Weight: find(block, "self_attn_layer_norm.weight"), norm1Bias: find(block, "self_attn_layer_norm.bias"),
                           fc1Weight: find(block, "fc1.weight")!, fc1Bias: find(block, "fc1.bias"),
                           fc2Weight: find(block, "fc2.weight")!, fc2Bias: find(block, "fc2.bias"),
                           norm2Weight: find(block, "final_layer_norm.weight"), norm2Bias: find(block, "final_layer_norm.bias"))
        self.head = Head(hasFinalNorm: config.hasFinalLayerNorm,
                         normWeight: find(head, "final_layer_norm.weight"), normBias: find(head, "final_layer_norm.bias"),
                         projectOut: find(head, "project_out.weight"), untiedHead: find(head, "lm_head.weight"))
    }

    /// The fused linears of a block: q|k|v, out_proj, fc1, fc2.
    func blockLinears(_ config: OPTConfig) -> [BlockLinear] {
        let c = config.hiddenSize, f = config.ffnDim
        return [BlockLinear(weightOffset: block.qkvWeight, outputs: 3 * c, inputs: c), BlockLinear(weightOffset: block.outWeight, outputs: c, inputs: c),
                BlockLinear(weightOffset: block.fc1Weight, outputs: f, inputs: c), BlockLinear(weightOffset: block.fc2Weight, outputs: c, inputs: f)]
    }
}
