import ZOCore

/// Qwen3 (dense): a Llama-like decoder with an RMSNorm over each head of q and of k before the
/// rotary embedding, no q/k/v biases (`attention_bias`), `head_dim` independent of hidden size
/// over heads, and Qwen2's optional sliding windows. From safetensors and from GGUF (`qwen3`,
/// q/k rows as Hugging Face has them).
public enum Qwen3Family: LlamaVariantFamily {
    public static let name = "Qwen3"
    public static let variant = LlamaVariant(modelType: "qwen3", queryKeyNorm: true, defaultSlidingWindow: 4096, windowNeedsFlag: true,
                                             defaultHeadDim: 128, ggufArchitecture: "qwen3", permutesQueryKey: false)

    /// Qwen3's published dense sizes (their config.json files: head_dim 128, 8 kv heads, V 151936).
    public static let namedShapes: [(name: String, config: any ArchitectureConfig)] = [
        ("qwen3-0.6b", shape(hidden: 1024, layers: 28, heads: 16, intermediate: 3072, tied: true)),
        ("qwen3-1.7b", shape(hidden: 2048, layers: 28, heads: 16, intermediate: 6144, tied: true)),
        ("qwen3-4b", shape(hidden: 2560, layers: 36, heads: 32, intermediate: 9728, tied: true)),
        ("qwen3-8b", shape(hidden: 4096, layers: 36, heads: 32, intermediate: 12_288, tied: false)),
        ("qwen3-14b", shape(hidden: 5120, layers: 40, heads: 40, intermediate: 17_408, tied: false)),
        ("qwen3-32b", shape(hidden: 5120, layers: 64, heads: 64, intermediate: 25_600, tied: false)),
    ]

    public static var parityConfig: any ArchitectureConfig {
        var config = LlamaConfig.parityConfig(modelType: "qwen3")
        config.headDim = 24  // not C / NH = 16
        return config
    }

    private static func shape(hidden: Int, layers: Int, heads: Int, intermediate: Int, tied: Bool) -> LlamaConfig {
        var config = LlamaConfig.shape("qwen3", hidden: hidden, layers: layers, heads: heads, kvHeads: 8, intermediate: intermediate,
                                       vocab: 151_936, positions: 40_960, theta: 1_000_000, tied: tied, eps: 1e-6)
        config.headDim = 128
        return config
    }
}
