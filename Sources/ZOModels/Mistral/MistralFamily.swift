import ZOCore

/// Mistral: a Llama-like decoder whose every block attends within a sliding window of
/// `sliding_window` tokens (4096 when config.json omits it; null for none, as from v0.2 on).
/// llama.cpp converts Mistral checkpoints to the `llama` architecture, so Mistral GGUF files
/// load as Llama.
public enum MistralFamily: LlamaVariantFamily {
    public static let name = "Mistral"
    public static let variant = LlamaVariant(modelType: "mistral", defaultSlidingWindow: 4096)

    /// Mistral-7B v0.1 (window 4096) and v0.3 (no window, 32768 tokens of vocabulary).
    public static let namedShapes: [(name: String, config: any ArchitectureConfig)] = [
        ("mistral-7b-v0.1", LlamaConfig.shape("mistral", hidden: 4096, layers: 32, heads: 32, kvHeads: 8, intermediate: 14_336,
                                              vocab: 32_000, positions: 32_768, theta: 10_000, tied: false).windowed(4096)),
        ("mistral-7b", LlamaConfig.shape("mistral", hidden: 4096, layers: 32, heads: 32, kvHeads: 8, intermediate: 14_336,
                                         vocab: 32_768, positions: 32_768, theta: 1_000_000, tied: false)),
    ]

    public static var parityConfig: any ArchitectureConfig { LlamaConfig.parityConfig(modelType: "mistral").windowed(6) }
}
