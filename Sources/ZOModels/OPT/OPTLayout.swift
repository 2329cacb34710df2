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

    /// The layouts of the embedding stage, every block and the head, with the offsets they
    /// declare (block 0's stand for every block: their layouts differ only in names).
    static func layouts(_ config: OPTConfig) -> (layouts: ModelLayouts, offsets: OPTOffsets) {
        let c = config.hiddenSize, d = config.embedDim
        var embedding = ParameterLayout()
        let tokens = embedding.add(decoder + "embed_tokens.weight", [config.vocabSize, d], .embedding)
        let positions = embedding.add(decoder + "embed_positions.weight", [config.maxPositionEmbeddings + OPTConfig.positionOffset, c],
                                      .embedding)
        let projectIn = d != c ? embedding.add(decoder + "project_in.weight", [c, d], .matrix) : nil

        let blocks = (0..<config.numHiddenLayers).map { blockLayout($0, config) }

        var head = ParameterLayout()
        let norm = config.hasFinalLayerNorm ? addNorm(&head, decoder + "final_layer_norm", c, config) : nil
        let projectOut = d != c ? head.add(decoder + "project_out.weight", [d, c], .matrix) : nil
        let untiedHead = config.tieWordEmbeddings ? nil : head.add("lm_head.weight", [config.vocabSize, d], .matrix)
        let offsets = OPTOffsets(embedding: Embedding(tokens: tokens, positions: positions, projectIn: projectIn),
                                 block: blocks.first?.offsets ?? blockLayout(0, config).offsets,
                                 head: Head(hasFinalNorm: config.hasFinalLayerNorm, normWeight: norm?.weight, normBias: norm?.bias,
                                            projectOut: projectOut, untiedHead: untiedHead))
        return ((embedding, blocks.map(\.layout), head), offsets)
    }

    /// Block `i`'s tensors in buffer order, and where they start.
    private static func blockLayout(_ i: Int, _ config: OPTConfig) -> (layout: ParameterLayout, offsets: Block) {
        let c = config.hiddenSize, f = config.ffnDim, bias = config.enableBias
        let p = decoder + "layers.\(i)."
        var layout = ParameterLayout()
        let projections = ["q_proj", "k_proj", "v_proj"]
        let qkvWeight = layout.count
        for name in projections { layout.add(p + "self_attn.\(name).weight", [c, c], .matrix) }
        let qkvBias = bias ? layout.count : nil
        if bias { for name in projections { layout.add(p + "self_attn.\(name).bias", [c], .bias) } }
        let outWeight = layout.add(p + "self_attn.out_proj.weight", [c, c], .matrix)
        let outBias = bias ? layout.add(p + "self_attn.out_proj.bias", [c], .bias) : nil
        let norm1 = addNorm(&layout, p + "self_attn_layer_norm", c, config)
        let fc1Weight = layout.add(p + "fc1.weight", [f, c], .matrix)
        let fc1Bias = bias ? layout.add(p + "fc1.bias", [f], .bias) : nil
        let fc2Weight = layout.add(p + "fc2.weight", [c, f], .matrix)
        let fc2Bias = bias ? layout.add(p + "fc2.bias", [c], .bias) : nil
        let norm2 = addNorm(&layout, p + "final_layer_norm", c, config)
        return (layout, Block(qkvWeight: qkvWeight, qkvBias: qkvBias, outWeight: outWeight, outBias: outBias,
                              norm1Weight: norm1?.weight, norm1Bias: norm1?.bias, fc1Weight: fc1Weight, fc1Bias: fc1Bias,
                              fc2Weight: fc2Weight, fc2Bias: fc2Bias, norm2Weight: norm2?.weight, norm2Bias: norm2?.bias))
    }

    /// A LayerNorm's weight and bias, when the config gives norms parameters.
    private static func addNorm(_ layout: inout ParameterLayout, _ name: String, _ c: Int,
                                _ config: OPTConfig) -> (weight: Int, bias: Int)? {
        guard config.layerNormElementwiseAffine else { return nil }
        return (layout.add(name + ".weight", [c], .norm), layout.add(name + ".bias", [c], .norm))
    }

    /// The fused linears of a block: q|k|v, out_proj, fc1, fc2.
    func blockLinears(_ config: OPTConfig) -> [BlockLinear] {
        let c = config.hiddenSize, f = config.ffnDim
        return [BlockLinear(weightOffset: block.qkvWeight, outputs: 3 * c, inputs: c), BlockLinear(weightOffset: block.outWeight, outputs: c, inputs: c),
                BlockLinear(weightOffset: block.fc1Weight, outputs: f, inputs: c), BlockLinear(weightOffset: block.fc2Weight, outputs: c, inputs: f)]
    }
}
