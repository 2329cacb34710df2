import ZOCore

/// Qwen2 and Qwen2.5: a Llama-like decoder with biases on q, k and v (none on o_proj), rope θ
/// 1e6, tied head in the small sizes, and sliding-window attention from `max_window_layers` on
/// when `use_sliding_window` is set. From safetensors and from GGUF (`qwen2`, q/k rows as
/// Hugging Face has them).
public enum Qwen2Family: LlamaVariantFamily {
    public static let name = "Qwen2"
    public static let variant = LlamaVariant(modelType: "qwen2", qkvBias: true, defaultSlidingWindow: 4096, windowNeedsFlag: true,
                                             ggufArchitecture: "qwen2", permutesQueryKey: false)

    /// Qwen2.5's published sizes (their config.json files).
    public static let namedShapes: [(name: String, config: any ArchitectureConfig)] = [
        ("qwen2.5-0.5b", LlamaConfig.shape("qwen2", hidden: 896, layers: 24, heads: 14, kvHeads: 2, intermediate: 4864, vocab: 151_936,
                                           positions: 32_768, theta: 1_000_000, tied: true, eps: 1e-6)),
        ("qwen2.5-1.5b", LlamaConfig.shape("qwen2", hidden: 1536, layers: 28, heads: 12, kvHeads: 2, intermediate: 8960, vocab: 151_936,
                                           positions: 32_768, theta: 1_000_000, tied: true, eps: 1e-6)),
        ("qwen2.5-7b", LlamaConfig.shape("qwen2", hidden: 3584, layers: 28, heads: 28, kvHeads: 4, intermediate: 18_944, vocab: 152_064,
                                         positions: 32_768, theta: 1_000_000, tied: false, eps: 1e-6)),
        ("qwen2.5-32b", LlamaConfig.shape("qwen2", hidden: 5120, layers: 64, heads: 40, kvHeads: 8, intermediate: 27_648, vocab: 152_064,
                                          positions: 32_768, theta: 1_000_000, tied: false, eps: 1e-6)),
    ]

    public static var parityConfig: any ArchitectureConfig {
        var config = LlamaConfig.parityConfig(modelType: "qwen2").windowed(5)
        config.layerTypes = ["full_attention", "sliding_attention", "sliding_attention"]
        return config
    }
}
