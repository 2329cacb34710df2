import ZOCore
import ZOFormats

/// Llama 2/3 and SmolLM2 in the registry: `model_type` llama, safetensors and GGUF.
public enum LlamaFamily: LlamaVariantFamily {
    public static let name = "Llama"
    public static let variant = LlamaVariant(modelType: "llama", ggufArchitecture: "llama")

    public static var namedShapes: [(name: String, config: any ArchitectureConfig)] {
        LlamaConfig.namedShapes.map { ($0.name, $0.config) }
    }

    public static var parityConfig: any ArchitectureConfig { LlamaConfig.parityConfig(modelType: "llama") }
}

extension LlamaConfig: ArchitectureConfig {
    public func makeModel(blockStorage: HostStorage) throws(ModelError) -> any CausalLM {
        try LlamaModel(config: self, blockStorage: blockStorage)
    }

    /// A 3-block model of `modelType` with grouped-query attention (4 heads, 2 kv heads), a
    /// tied head, V 512 and 64 positions, for the backend parity checks.
    static func parityConfig(modelType: String) -> LlamaConfig {
        var config = LlamaConfig()
        config.modelType = modelType
        (config.vocabSize, config.hiddenSize, config.intermediateSize, config.numHiddenLayers) = (512, 64, 160, 3)
        (config.numAttentionHeads, config.numKeyValueHeads, config.maxPositionEmbeddings) = (4, 2, 64)
        (config.tieWordEmbeddings, config.rmsNormEps, config.ropeTheta) = (true, 1e-5, 10_000)
        return config
    }

    /// This config with a sliding window of `size` tokens in every block (or in those `layerTypes` marks).
    func windowed(_ size: Int) -> LlamaConfig {
        var config = self
        config.slidingWindow = size
        return config
    }

    /// Published Llama-family sizes (their config.json files), by short name.
    public static let namedShapes: [(name: String, config: LlamaConfig)] = [
        ("smollm2-135m", shape(hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49_152, positions: 8192,
                               theta: 100_000, tied: true)),
        ("llama-3.2-1b", shape(hidden: 2048, layers: 16, heads: 32, kvHeads: 8, intermediate: 8192, vocab: 128_256, positions: 131_072,
                               theta: 500_000, tied: true, llama3Factor: 32)),
        ("llama-3.1-8b", shape(hidden: 4096, layers: 32, heads: 32, kvHeads: 8, intermediate: 14_336, vocab: 128_256,
                               positions: 131_072, theta: 500_000, tied: false, llama3Factor: 8)),
        ("llama-3.1-70b", shape(hidden: 8192, layers: 80, heads: 64, kvHeads: 8, intermediate: 28_672, vocab: 128_256,
                                positions: 131_072, theta: 500_000, tied: false, llama3Factor: 8)),
        ("llama-3.1-405b", shape(hidden: 16_384, layers: 126, heads: 128, kvHeads: 8, intermediate: 53_248, vocab: 128_256,
                                 positions: 131_072, theta: 500_000, tied: false, llama3Factor: 8)),
    ]

    /// A Llama-like config of `modelType` with these sizes (rms_norm_eps 1e-5 unless given).
    static func shape(_ modelType: String = "llama", hidden: Int, layers: Int, heads: Int, kvHeads: Int, intermediate: Int, vocab: Int,
                      positions: Int, theta: Double, tied: Bool, llama3Factor: Double? = nil, eps: Double = 1e-5) -> LlamaConfig {
        var config = LlamaConfig()
        config.modelType = modelType
        (config.hiddenSize, config.numHiddenLayers, config.numAttentionHeads) = (hidden, layers, heads)
        (config.numKeyValueHeads, config.intermediateSize, config.vocabSize) = (kvHeads, intermediate, vocab)
        (config.maxPositionEmbeddings, config.ropeTheta, config.tieWordEmbeddings, config.rmsNormEps) = (positions, theta, tied, eps)
        config.ropeScaling = llama3Factor.map {
            RopeScaling(ropeType: "llama3", factor: $0, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)
        }
        return config
    }
}
