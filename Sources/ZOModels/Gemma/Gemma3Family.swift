import ZOCore

/// Gemma 3 (text): Gemma 2's block with Qwen3's RMSNorm over each q and k head (weights around 0
/// too), no soft caps (Hugging Face's model never applies `attn_logit_softcapping`), five sliding
/// blocks to a global one, and two rotary embeddings: the global blocks' (base 1e6, scaled by
/// `rope_scaling`) and the sliding blocks' (`rope_local_base_freq`, 1e4). Model type
/// `gemma3_text`; the multimodal `gemma3` is refused. From safetensors and from GGUF (`gemma3`).
public enum Gemma3Family: LlamaVariantFamily {
    public static let name = "Gemma 3"
    public static let variant = LlamaVariant(
        modelType: "gemma3_text", queryKeyNorm: true, defaultSlidingWindow: 4096, defaultHeadDim: 256, ggufArchitecture: "gemma3",
        permutesQueryKey: false, normWeightOffset: 1, scalesEmbeddings: true, sandwichNorms: true, defaultHiddenAct: "gelu_pytorch_tanh",
        defaultRopeTheta: 1_000_000, defaultQueryPreAttnScalar: 256, defaultLocalRopeTheta: 10_000, ignoresAttentionSoftcap: true,
        defaultSlidingPattern: 6, ggufWideQueryScaleBlocks: 62)

    /// Gemma 3's published text sizes (1B is text-only; the others' language models, V 262208).
    public static let namedShapes: [(name: String, config: any ArchitectureConfig)] = [
        ("gemma-3-1b", LlamaConfig.gemma("gemma3_text", hidden: 1152, layers: 26, heads: 4, kvHeads: 1, headDim: 256, intermediate: 6912,
                                         vocab: 262_144, positions: 32_768, window: 512, queryScalar: 256)),
        ("gemma-3-4b", LlamaConfig.gemma("gemma3_text", hidden: 2560, layers: 34, heads: 8, kvHeads: 4, headDim: 256,
                                         intermediate: 10_240, vocab: 262_208, positions: 131_072, window: 1024, queryScalar: 256,
                                         linearRope: 8)),
        ("gemma-3-12b", LlamaConfig.gemma("gemma3_text", hidden: 3840, layers: 48, heads: 16, kvHeads: 8, headDim: 256,
                                          intermediate: 15_360, vocab: 262_208, positions: 131_072, window: 1024, queryScalar: 256,
                                          linearRope: 8)),
        ("gemma-3-27b", LlamaConfig.gemma("gemma3_text", hidden: 5376, layers: 62, heads: 32, kvHeads: 16, headDim: 128,
                                          intermediate: 21_504, vocab: 262_208, positions: 131_072, window: 1024, queryScalar: 168,
                                          linearRope: 8)),
    ]

    /// Blocks 0 and 1 slide over 5 tokens (local base 1e4), block 2 is global (base 1e6 scaled
    /// linearly by 2); head size 24 (not C / NH), scale 16^−½.
    public static var parityConfig: any ArchitectureConfig {
        var config = LlamaConfig.parityConfig(modelType: "gemma3_text")
        config.headDim = 24
        config.hiddenAct = "gelu_pytorch_tanh"
        config.queryPreAttnScalar = 16
        (config.ropeTheta, config.ropeLocalBaseFreq) = (1_000_000, 10_000)
        config.ropeScaling = LlamaConfig.RopeScaling(ropeType: "linear", factor: 2)
        config.layerTypes = ["sliding_attention", "sliding_attention", "full_attention"]
        return config.windowed(5)
    }
}
