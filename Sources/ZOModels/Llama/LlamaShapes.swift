extension LlamaConfig {
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
    ]

    private static func shape(hidden: Int, layers: Int, heads: Int, kvHeads: Int, intermediate: Int, vocab: Int, positions: Int,
                              theta: Double, tied: Bool, llama3Factor: Double? = nil) -> LlamaConfig {
        var config = LlamaConfig()
        (config.hiddenSize, config.numHiddenLayers, config.numAttentionHeads) = (hidden, layers, heads)
        (config.numKeyValueHeads, config.intermediateSize, config.vocabSize) = (kvHeads, intermediate, vocab)
        (config.maxPositionEmbeddings, config.ropeTheta, config.tieWordEmbeddings, config.rmsNormEps) = (positions, theta, tied, 1e-5)
        config.ropeScaling = llama3Factor.map {
            RopeScaling(ropeType: "llama3", factor: $0, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192)
        }
        return config
    }
}
