/// Llama's parameter groups and the element offsets the stage functions read.
///
/// Within a block, q/k/v projections are adjacent ([(NH + 2·NKV)·HS, C]) and so are gate and
/// up ([2F, C]), so each pair of projections runs as one GEMM.
struct LlamaOffsets: Sendable {
    struct Block: Sendable {
        let inputNorm: Int, postNorm: Int
        let qkvWeight: Int, qkvBias: Int?
        let outWeight: Int, outBias: Int?
        let gateUpWeight: Int, gateUpBias: Int?
        let downWeight: Int, downBias: Int?
    }

    struct Head: Sendable {
        let norm: Int
        let untiedHead: Int?
    }

    let block: Block
    let head: Head

    static func layouts(_ config: LlamaConfig) -> (embedding: ParameterLayout, blocks: [ParameterLayout], head: ParameterLayout) {
        let c = config.hiddenSize, hs = config.headSize, f = config.intermediateSize
        let qRows = config.numAttentionHeads * hs, kvRows = config.kvHeads * hs
        var embedding = ParameterLayout()
        embedding.add("model.embed_tokens.weight", [config.vocabSize, c], .embedding)

        let blocks = (0..<config.numHiddenLayers).map { i in
            let p = "model.layers.\(i)."
            var layout = ParameterLayout()
            layout.add(p + "self_attn.q_proj.weight", [qRows, c], .matrix)
            layout.add(p + "self_attn.k_proj.weight", [kvRows, c], .matrix)
            layout.add(p + "self_attn.v_proj.weight", [kvRows, c], .matrix)
            if config.attentionBias {
                layout.add(p + "self_attn.q_proj.bias", [qRows], .bias)
                layout.add(p + "self_attn.k_proj.bias", [kvRows], .bias)
                layout.add(p + "self_attn.v_proj.bias", [kvRows], .bias)
            }
            layout.add(p + "self_attn.o_proj.weight", [c, qRows], .matrix)
            if config.attentionBias { layout.add(p + "self_attn.o_proj.bias", [c], .bias) }
            layout.add(p + "input_layernorm.weight", [c], .norm)
            layout.add(p + "post_attention_layernorm.weight", [c], .norm)
            layout.add(p + "mlp.gate_proj.weight", [f, c], .matrix)
            layout.add(p + "mlp.up_proj.weight", [f, c], .matrix)
            if config.mlpBias {
                layout.add(p + "mlp.gate_proj.bias", [f], .bias)
                layout.add(p + "mlp.up_proj.bias", [f], .bias)
            }
            layout.add(p + "mlp.down_proj.weight", [c, f], .matrix)
            if config.mlpBias { layout.add(p + "mlp.down_proj.bias", [c], .bias) }
            return layout
        }

        var head = ParameterLayout()
        head.add("model.norm.weight", [c], .norm)
        if !config.tieWordEmbeddings { head.add("lm_head.weight", [config.vocabSize, c], .matrix) }
        return (embedding, blocks, head)
    }

    init(config: LlamaConfig, block: ParameterLayout, head: ParameterLayout) {
        func find(_ layout: ParameterLayout, _ suffix: String) -> Int? {
            layout.specs.first { $0.name.hasSuffix(suffix) }?.offset
        }
        self.block = Block(inputNorm: find(block, "input_layernorm.weight")!, postNorm: find(block, "post_attention_layernorm.weight")!,
                           qkvWeight: find(block, "q_proj.weight")!, qkvBias: find(block, "q_proj.bias"),
                           outWeight: find(block, "o_proj.weight")!, outBias: find(block, "o_proj.bias"),
                           gateUpWeight: find(block, "gate_proj.weight")!, gateUpBias: find(block, "gate_proj.bias"),
                           downWeight: find(block, "down_proj.weight")!, downBias: find(block, "down_proj.bias"))
        self.head = Head(norm: find(head, "model.norm.weight")!, untiedHead: find(head, "lm_head.weight"))
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

    /// The GGUF (llama.cpp) name of a Hugging Face parameter name.
    static func ggufName(_ name: String) -> String {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 3)  // model, layers, i, rest
        guard parts.count == 4 else { return name }
        let renames = [
            "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
            "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.bias": "attn_output.bias",
            "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight", "mlp.gate_proj.bias": "ffn_gate.bias",
            "mlp.up_proj.bias": "ffn_up.bias", "mlp.down_proj.bias": "ffn_down.bias",
        ]
        return "blk.\(parts[2])." + (renames[String(parts[3])] ?? String(parts[3]))
    }
}
