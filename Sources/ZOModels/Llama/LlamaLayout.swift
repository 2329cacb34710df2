/// Llama's parameter groups and the element offsets the stage functions read.
///
/// Within a block, q/k/v projections are adjacent ([(NH + 2·NKV)·HS, C]) and so are gate and
/// up ([2F, C]), so each pair of projections runs as one GEMM.
struct LlamaOffsets: Sendable {
    struct Block: Sendable {
        /// The RMSNorms on the attention's input and the MLP's input, and with sandwich norms
        /// (Gemma) on their outputs.
        let attentionNorm: Int, mlpNorm: Int
        let attentionOutputNorm: Int?, mlpOutputNorm: Int?
        let qkvWeight: Int, qkvBias: Int?
        let outWeight: Int, outBias: Int?
        /// q_norm [HS] then k_norm [HS] (Qwen3).
        let queryKeyNorm: Int?
        let gateUpWeight: Int, gateUpBias: Int?
        let downWeight: Int, downBias: Int?
    }

    struct Head: Sendable {
        let norm: Int
        let untiedHead: Int?
    }

    let block: Block
    let head: Head

    /// The layouts of the embedding stage, every block and the head, with the offsets they
    /// declare (block 0's stand for every block: their layouts differ only in names).
    static func layouts(_ config: LlamaConfig) -> (layouts: ModelLayouts, offsets: LlamaOffsets) {
        var embedding = ParameterLayout()
        embedding.add("model.embed_tokens.weight", [config.vocabSize, config.hiddenSize], .embedding)
        let blocks = (0..<config.numHiddenLayers).map { blockLayout($0, config) }
        var head = ParameterLayout()
        let norm = head.add("model.norm.weight", [config.hiddenSize], .norm)
        let untiedHead = config.tieWordEmbeddings ? nil : head.add("lm_head.weight", [config.vocabSize, config.hiddenSize], .matrix)
        let block = blocks.first?.offsets ?? blockLayout(0, config).offsets
        return ((embedding, blocks.map(\.layout), head), LlamaOffsets(block: block, head: Head(norm: norm, untiedHead: untiedHead)))
    }

    /// Block `i`'s tensors in buffer order, and where they start.
    private static func blockLayout(_ i: Int, _ config: LlamaConfig) -> (layout: ParameterLayout, offsets: Block) {
        let c = config.hiddenSize, hs = config.headSize, f = config.intermediateSize
        let qRows = config.numAttentionHeads * hs, kvRows = config.kvHeads * hs
        let p = "model.layers.\(i)."
        var layout = ParameterLayout()
        /// Adds tensors back to back and returns the first one's offset.
        func add(_ tensors: [(String, [Int])], _ kind: ParameterKind) -> Int {
            let first = layout.count
            for (name, shape) in tensors { layout.add(p + name, shape, kind) }
            return first
        }
        let fused = config.variant.fusedProjections
        let qkvWeight = fused ? add([("self_attn.qkv_proj.weight", [qRows + 2 * kvRows, c])], .matrix)
            : add([("self_attn.q_proj.weight", [qRows, c]), ("self_attn.k_proj.weight", [kvRows, c]),
                   ("self_attn.v_proj.weight", [kvRows, c])], .matrix)
        let qkvBias = !config.qkvBias ? nil : fused ? add([("self_attn.qkv_proj.bias", [qRows + 2 * kvRows])], .bias)
            : add([("self_attn.q_proj.bias", [qRows]), ("self_attn.k_proj.bias", [kvRows]), ("self_attn.v_proj.bias", [kvRows])], .bias)
        let outWeight = add([("self_attn.o_proj.weight", [c, qRows])], .matrix)
        let outBias = config.attentionBias ? add([("self_attn.o_proj.bias", [c])], .bias) : nil
        let queryKeyNorm = config.variant.queryKeyNorm
            ? add([("self_attn.q_norm.weight", [hs]), ("self_attn.k_norm.weight", [hs])], .norm) : nil
        let attentionNorm = add([("input_layernorm.weight", [c])], .norm)
        let sandwich = config.variant.sandwichNorms
        let attentionOutputNorm = sandwich ? add([("post_attention_layernorm.weight", [c])], .norm) : nil
        let mlpNorm = add([(sandwich ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight", [c])], .norm)
        let mlpOutputNorm = sandwich ? add([("post_feedforward_layernorm.weight", [c])], .norm) : nil
        let gateUpWeight = fused ? add([("mlp.gate_up_proj.weight", [2 * f, c])], .matrix)
            : add([("mlp.gate_proj.weight", [f, c]), ("mlp.up_proj.weight", [f, c])], .matrix)
        let gateUpBias = !config.mlpBias ? nil : fused ? add([("mlp.gate_up_proj.bias", [2 * f])], .bias)
            : add([("mlp.gate_proj.bias", [f]), ("mlp.up_proj.bias", [f])], .bias)
        let downWeight = add([("mlp.down_proj.weight", [c, f])], .matrix)
        let downBias = config.mlpBias ? add([("mlp.down_proj.bias", [c])], .bias) : nil
        return (layout, Block(attentionNorm: attentionNorm, mlpNorm: mlpNorm, attentionOutputNorm: attentionOutputNorm,
                              mlpOutputNorm: mlpOutputNorm, qkvWeight: qkvWeight, qkvBias: qkvBias,
                              outWeight: outWeight, outBias: outBias, queryKeyNorm: queryKeyNorm, gateUpWeight: gateUpWeight,
                              gateUpBias: gateUpBias, downWeight: downWeight, downBias: downBias))
    }

    /// The fused linears of a block: q|k|v, o_proj, gate|up, down_proj.
    func blockLinears(_ config: LlamaConfig) -> [BlockLinear] {
        let c = config.hiddenSize, f = config.intermediateSize, o = block
        let attention = config.numAttentionHeads * config.headSize
        let qkv = attention + 2 * config.kvHeads * config.headSize
        return [BlockLinear(weightOffset: o.qkvWeight, outputs: qkv, inputs: c),
                BlockLinear(weightOffset: o.outWeight, outputs: c, inputs: attention),
                BlockLinear(weightOffset: o.gateUpWeight, outputs: 2 * f, inputs: c),
                BlockLinear(weightOffset: o.downWeight, outputs: c, inputs: f)]
    }

    /// The GGUF (llama.cpp) name of a Hugging Face parameter name; with sandwich norms (Gemma),
    /// post_attention_layernorm is the attention's output norm, not the MLP's input norm.
    static func ggufName(_ name: String, sandwichNorms: Bool) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 3)  // model, layers, i, rest
        guard parts.count == 4 else { return name }
        if sandwichNorms, let gemma = ["post_attention_layernorm.weight": "post_attention_norm.weight",
                                        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                                        "post_feedforward_layernorm.weight": "post_ffw_norm.weight"][String(parts[3])] {
            return "blk.\(parts[2])." + gemma
        }
        let renames = [
            "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
            "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.bias": "attn_output.bias",
            "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight", "mlp.gate_proj.bias": "ffn_gate.bias",
            "mlp.up_proj.bias": "ffn_up.bias", "mlp.down_proj.bias": "ffn_down.bias",
            "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
            "self_attn.qkv_proj.weight": "attn_qkv.weight", "mlp.gate_up_proj.weight": "ffn_up.weight",
            "self_attn.qkv_proj.bias": "attn_qkv.bias", "mlp.gate_up_proj.bias": "ffn_up.bias",
        ]
        return "blk.\(parts[2])." + (renames[String(parts[3])] ?? String(parts[3]))
    }
}
