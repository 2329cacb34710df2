import ZOCore

/// Gemma 2: a Llama-like decoder with GeGLU (tanh-approximated GELU), RMSNorms whose weights are
/// stored around 0 (the norm multiplies by 1 + w), embeddings scaled by √C, norms on the
/// attention's and the MLP's outputs as well as their inputs, scores scaled by
/// `query_pre_attn_scalar`^−½ and soft-capped, soft-capped logits, and sliding-window blocks
/// alternating with global ones (even blocks slide). From safetensors and from GGUF (`gemma2`:
/// norms stored as 1 + w, q/k rows as Hugging Face has them).
public enum Gemma2Family: LlamaVariantFamily {
    public static let name = "Gemma 2"
    public static let variant = LlamaVariant(
        modelType: "gemma2", defaultSlidingWindow: 4096, defaultHeadDim: 256, ggufArchitecture: "gemma2", permutesQueryKey: false,
        normWeightOffset: 1, scalesEmbeddings: true, sandwichNorms: true, defaultHiddenAct: "gelu_pytorch_tanh",
        defaultQueryPreAttnScalar: 256, defaultFinalLogitSoftcap: 30, defaultAttentionSoftcap: 50, defaultSlidingPattern: 2,
        ggufWideQueryScaleBlocks: 46)

    /// Gemma 2's published sizes (their config.json files: V 256000, window 4096, 8192 positions).
    public static let namedShapes: [(name: String, config: any ArchitectureConfig)] = [
        ("gemma-2-2b", LlamaConfig.gemma("gemma2", hidden: 2304, layers: 26, heads: 8, kvHeads: 4, headDim: 256, intermediate: 9216,
                                         vocab: 256_000, positions: 8192, window: 4096, queryScalar: 256)),
        ("gemma-2-9b", LlamaConfig.gemma("gemma2", hidden: 3584, layers: 42, heads: 16, kvHeads: 8, headDim: 256, intermediate: 14_336,
                                         vocab: 256_000, positions: 8192, window: 4096, queryScalar: 256)),
        ("gemma-2-27b", LlamaConfig.gemma("gemma2", hidden: 4608, layers: 46, heads: 32, kvHeads: 16, headDim: 128,
                                          intermediate: 36_864, vocab: 256_000, positions: 8192, window: 4096, queryScalar: 144)),
    ]

    /// Blocks 0 and 2 slide over 6 tokens; head size 24 (not C / NH), scale 20^−½, caps 5 and 3.
    public static var parityConfig: any ArchitectureConfig {
        var config = LlamaConfig.parityConfig(modelType: "gemma2")
        config.headDim = 24
        config.hiddenAct = "gelu_pytorch_tanh"
        (config.queryPreAttnScalar, config.attnLogitSoftcapping, config.finalLogitSoftcapping) = (20, 5, 3)
        config.layerTypes = ["sliding_attention", "full_attention", "sliding_attention"]
        return config.windowed(6)
    }
}

extension LlamaConfig {
    /// A Gemma 2 or 3 config with these sizes (rms_norm_eps 1e-6, tied; Gemma 2's soft caps
    /// 50 and 30, Gemma 3's global rotary base 1e6 scaled linearly by `linearRope`, local 1e4).
    static func gemma(_ modelType: String, hidden: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, intermediate: Int,
                      vocab: Int, positions: Int, window: Int, queryScalar: Double, linearRope: Double? = nil) -> LlamaConfig {
        let variant = LlamaVariant.named(modelType)
        var config = LlamaConfig.shape(modelType, hidden: hidden, layers: layers, heads: heads, kvHeads: kvHeads,
                                       intermediate: intermediate, vocab: vocab, positions: positions,
                                       theta: variant.defaultRopeTheta ?? 10_000, tied: true, eps: 1e-6)
        config.headDim = headDim
        config.hiddenAct = variant.defaultHiddenAct
        config.queryPreAttnScalar = queryScalar
        (config.attnLogitSoftcapping, config.finalLogitSoftcapping) = (variant.defaultAttentionSoftcap, variant.defaultFinalLogitSoftcap)
        config.ropeLocalBaseFreq = variant.defaultLocalRopeTheta
        config.ropeScaling = linearRope.map { RopeScaling(ropeType: "linear", factor: $0) }
        config.layerTypes = LlamaConfig.layerTypes(blocks: layers, globalEvery: variant.defaultSlidingPattern ?? 1)
        return config.windowed(window)
    }
}
