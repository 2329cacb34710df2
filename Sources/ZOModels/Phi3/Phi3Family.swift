import ZOCore

/// Phi-3: a Llama-like decoder whose q|k|v and gate|up projections are stored fused
/// (`qkv_proj`, `gate_up_proj`: ZOTune's own layout, so only the names differ), with LongRoPE
/// (`rope_scaling` type longrope or su: per-frequency divisors for short and long batches, and
/// scaled cos/sin) in its long-context versions and an optional sliding window. From
/// safetensors and from GGUF (`phi3`, LongRoPE's factors as tensors).
public enum Phi3Family: LlamaVariantFamily {
    public static let name = "Phi-3"
    public static let variant = LlamaVariant(modelType: "phi3", ggufArchitecture: "phi3", permutesQueryKey: false,
                                             fusedProjections: true, defaultOriginalMaxPositionEmbeddings: 4096)

    /// Phi-3-mini (4k context, sliding window 2047) and Phi-3-medium (4k), from their config.json files.
    public static let namedShapes: [(name: String, config: any ArchitectureConfig)] = [
        ("phi-3-mini", LlamaConfig.shape("phi3", hidden: 3072, layers: 32, heads: 32, kvHeads: 32, intermediate: 8192, vocab: 32_064,
                                         positions: 4096, theta: 10_000, tied: false).windowed(2047)),
        ("phi-3-medium", LlamaConfig.shape("phi3", hidden: 5120, layers: 40, heads: 40, kvHeads: 10, intermediate: 17_920, vocab: 32_064,
                                           positions: 4096, theta: 10_000, tied: false).windowed(2047)),
    ]

    /// A 3-block model with LongRoPE: batches past 12 positions take the long factors.
    public static var parityConfig: any ArchitectureConfig {
        var config = LlamaConfig.parityConfig(modelType: "phi3")
        var scaling = LlamaConfig.RopeScaling(ropeType: "longrope", factor: 1, originalMaxPositionEmbeddings: 12)
        let half = config.headSize / 2
        scaling.shortFactor = (0..<half).map { 1 + Double($0) / Double(half) }
        scaling.longFactor = (0..<half).map { 1 + 4 * Double($0) / Double(half) }
        config.ropeScaling = scaling
        return config
    }
}
