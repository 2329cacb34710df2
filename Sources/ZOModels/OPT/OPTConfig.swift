#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// OPT's `config.json`, with Hugging Face's field names and defaults (`OPTConfig`).
public struct OPTConfig: Codable, Sendable, Equatable {
    public var modelType = "opt"
    public var vocabSize = 50272
    public var hiddenSize = 768
    public var numHiddenLayers = 12
    public var ffnDim = 3072
    public var numAttentionHeads = 12
    public var maxPositionEmbeddings = 2048
    public var doLayerNormBefore = true
    public var removeFinalLayerNorm = false
    /// Width of the token embeddings; nil means `hiddenSize`. OPT-350M uses 512 with 1024 hidden.
    public var wordEmbedProjDim: Int?
    public var enableBias = true
    public var layerNormElementwiseAffine = true
    public var activationFunction = "relu"
    public var tieWordEmbeddings = true
    public var padTokenId: Int? = 1
    public var bosTokenId: Int? = 2
    public var eosTokenId: Int? = 2
    public var torchDtype: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case ffnDim = "ffn_dim"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case doLayerNormBefore = "do_layer_norm_before"
        case removeFinalLayerNorm = "_remove_final_layer_norm"
        case wordEmbedProjDim = "word_embed_proj_dim"
        case enableBias = "enable_bias"
        case layerNormElementwiseAffine = "layer_norm_elementwise_affine"
        case activationFunction = "activation_function"
        case tieWordEmbeddings = "tie_word_embeddings"
        case padTokenId = "pad_token_id"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case torchDtype = "torch_dtype"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = OPTConfig()
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? defaults.modelType
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? defaults.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? defaults.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? defaults.numHiddenLayers
        ffnDim = try c.decodeIfPresent(Int.self, forKey: .ffnDim) ?? defaults.ffnDim
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? defaults.numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? defaults.maxPositionEmbeddings
        doLayerNormBefore = try c.decodeIfPresent(Bool.self, forKey: .doLayerNormBefore) ?? defaults.doLayerNormBefore
        removeFinalLayerNorm = try c.decodeIfPresent(Bool.self, forKey: .removeFinalLayerNorm) ?? defaults.removeFinalLayerNorm
        wordEmbedProjDim = try c.decodeIfPresent(Int.self, forKey: .wordEmbedProjDim)
        enableBias = try c.decodeIfPresent(Bool.self, forKey: .enableBias) ?? defaults.enableBias
        layerNormElementwiseAffine = try c.decodeIfPresent(Bool.self, forKey: .layerNormElementwiseAffine) ?? defaults.layerNormElementwiseAffine
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? defaults.activationFunction
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? defaults.tieWordEmbeddings
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? defaults.padTokenId
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId) ?? defaults.bosTokenId
        eosTokenId = try c.decodeIfPresent(Int.self, forKey: .eosTokenId) ?? defaults.eosTokenId
        torchDtype = try c.decodeIfPresent(String.self, forKey: .torchDtype)
    }

    /// Width of the token embeddings and of the LM head's input.
    public var embedDim: Int { wordEmbedProjDim ?? hiddenSize }
    /// Whether the decoder ends with a layer norm (pre-LN models that keep it).
    public var hasFinalLayerNorm: Bool { doLayerNormBefore && !removeFinalLayerNorm }
    /// Head size HS = C / NH.
    public var headSize: Int { hiddenSize / numAttentionHeads }
    /// OPT's learned positions start at row 2 of the table.
    public static let positionOffset = 2

    /// Checks the fields the model relies on; `path` is named in the error.
    public func validate(path: String) throws(ModelError) {
        func require(_ condition: Bool, _ reason: String) throws(ModelError) {
            if !condition { throw .config(path: path, reason: reason) }
        }
        try require(modelType == "opt", "model_type is '\(modelType)', expected 'opt'")
        for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", numHiddenLayers),
                              ("ffn_dim", ffnDim), ("num_attention_heads", numAttentionHeads),
                              ("max_position_embeddings", maxPositionEmbeddings), ("word_embed_proj_dim", embedDim)] {
            try require(value > 0 && value <= 1 << 24, "\(name) = \(value) is out of range")
        }
        try require(hiddenSize % numAttentionHeads == 0,
                     "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        guard activationFunction == "relu" else {
            throw .unsupported(path: path, reason: "activation_function '\(activationFunction)' (only relu)")
        }
    }

    /// Reads and validates `config.json` at `path`.
    public static func load(path: String) throws(ModelError) -> OPTConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .config(path: path, reason: "cannot read the file")
        }
        let config: OPTConfig
        do {
            config = try JSONDecoder().decode(OPTConfig.self, from: data)
        } catch {
            throw .config(path: path, reason: "not a valid OPT config.json (\(error))")
        }
        try config.validate(path: path)
        return config
    }
}
