import ZOCore

/// OPT (Zhang et al., 2022) in the registry: `model_type` opt, safetensors only.
public enum OPTFamily: ModelFamily {
    public static let name = "OPT"
    public static let modelTypes = ["opt"]

    public static func load(directory: String, blockStorage: HostStorage) throws(ModelError) -> any CausalLM {
        try OPTModel.load(directory: directory, blockStorage: blockStorage)
    }

    public static var namedShapes: [(name: String, config: any ArchitectureConfig)] {
        OPTConfig.namedShapes.map { ($0.name, $0.config) }
    }

    public static var parityConfig: any ArchitectureConfig {
        var config = OPTConfig()
        (config.vocabSize, config.hiddenSize, config.numHiddenLayers, config.ffnDim, config.numAttentionHeads) = (512, 64, 3, 256, 4)
        config.maxPositionEmbeddings = 64
        return config
    }
}

extension OPTConfig: ArchitectureConfig {
    public func makeModel(blockStorage: HostStorage) throws(ModelError) -> any CausalLM {
        try OPTModel(config: self, blockStorage: blockStorage)
    }

    /// The published OPT sizes (Zhang et al., 2022, Table 1), by short name.
    public static let namedShapes: [(name: String, config: OPTConfig)] = [
        ("opt-125m", shape(hidden: 768, layers: 12, heads: 12)),
        ("opt-350m", shape(hidden: 1024, layers: 24, heads: 16, embedDim: 512, preNorm: false)),
        ("opt-1.3b", shape(hidden: 2048, layers: 24, heads: 32)),
        ("opt-2.7b", shape(hidden: 2560, layers: 32, heads: 32)),
        ("opt-6.7b", shape(hidden: 4096, layers: 32, heads: 32)),
        ("opt-13b", shape(hidden: 5120, layers: 40, heads: 40)),
        ("opt-30b", shape(hidden: 7168, layers: 48, heads: 56)),
        ("opt-66b", shape(hidden: 9216, layers: 64, heads: 72)),
        ("opt-175b", shape(hidden: 12288, layers: 96, heads: 96)),
    ]

    private static func shape(hidden: Int, layers: Int, heads: Int, embedDim: Int? = nil, preNorm: Bool = true) -> OPTConfig {
        var config = OPTConfig()
        config.hiddenSize = hidden
        config.numHiddenLayers = layers
        config.numAttentionHeads = heads
        config.ffnDim = 4 * hidden
        config.wordEmbedProjDim = embedDim
        config.doLayerNormBefore = preNorm
        return config
    }
}
