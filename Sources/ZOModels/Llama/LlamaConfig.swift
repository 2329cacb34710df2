#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOFormats

/// The `config.json` of a Llama-like decoder (Hugging Face's `LlamaConfig`, and the
/// `model_type`s whose `LlamaVariant` says how they differ: Mistral, Qwen2), also built from
/// GGUF `<arch>.*` keys.
public struct LlamaConfig: Codable, Sendable, Equatable {
    /// `rope_scaling`: the types ZOTune implements ("linear", "llama3", and Phi-3's "longrope",
    /// also called "su").
    public struct RopeScaling: Codable, Sendable, Equatable {
        public var ropeType: String
        public var factor: Double
        public var lowFreqFactor: Double?
        public var highFreqFactor: Double?
        public var originalMaxPositionEmbeddings: Int?
        /// Transformers 5 keeps the base here too (`rope_parameters.rope_theta`).
        public var ropeTheta: Double?
        /// LongRoPE's divisors of the inverse frequencies [HS/2] for batches within
        /// `originalMaxPositionEmbeddings` positions and for longer ones, and the factor its
        /// cos and sin are scaled by (nil: derived from the context extension, as Hugging Face does).
        public var shortFactor: [Double]?
        public var longFactor: [Double]?
        public var attentionFactor: Double?
        /// Partial rotary embeddings (refused unless 1).
        public var partialRotaryFactor: Double?

        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", type, factor, ropeTheta = "rope_theta"
            case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case shortFactor = "short_factor", longFactor = "long_factor", attentionFactor = "attention_factor"
            case partialRotaryFactor = "partial_rotary_factor"
        }

        /// Whether this is LongRoPE (two rotary tables, chosen per batch by its length).
        public var isLongRoPE: Bool { ropeType == "longrope" || ropeType == "su" }

        public init(ropeType: String, factor: Double, lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil,
                    originalMaxPositionEmbeddings: Int? = nil) {
            self.ropeType = ropeType
            self.factor = factor
            self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ropeType = try c.decodeIfPresent(String.self, forKey: .ropeType) ?? c.decodeIfPresent(String.self, forKey: .type) ?? "default"
            factor = try c.decodeIfPresent(Double.self, forKey: .factor) ?? 1
            lowFreqFactor = try c.decodeIfPresent(Double.self, forKey: .lowFreqFactor)
            highFreqFactor = try c.decodeIfPresent(Double.self, forKey: .highFreqFactor)
            originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
            ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
            shortFactor = try c.decodeIfPresent([Double].self, forKey: .shortFactor)
            longFactor = try c.decodeIfPresent([Double].self, forKey: .longFactor)
            attentionFactor = try c.decodeIfPresent(Double.self, forKey: .attentionFactor)
            partialRotaryFactor = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ropeType, forKey: .ropeType)
            // LongRoPE's factor is the context extension, which transformers derives when it is absent.
            if !isLongRoPE { try c.encode(factor, forKey: .factor) }
            try c.encodeIfPresent(lowFreqFactor, forKey: .lowFreqFactor)
            try c.encodeIfPresent(highFreqFactor, forKey: .highFreqFactor)
            try c.encodeIfPresent(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
            try c.encodeIfPresent(ropeTheta, forKey: .ropeTheta)
            try c.encodeIfPresent(shortFactor, forKey: .shortFactor)
            try c.encodeIfPresent(longFactor, forKey: .longFactor)
            try c.encodeIfPresent(attentionFactor, forKey: .attentionFactor)
            try c.encodeIfPresent(partialRotaryFactor, forKey: .partialRotaryFactor)
        }
    }

    public var modelType = "llama"
    public var vocabSize = 32000
    public var hiddenSize = 4096
    public var intermediateSize = 11008
    public var numHiddenLayers = 32
    public var numAttentionHeads = 32
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var maxPositionEmbeddings = 2048
    public var rmsNormEps = 1e-6
    public var ropeTheta = 10000.0
    public var ropeScaling: RopeScaling?
    public var attentionBias = false
    public var mlpBias = false
    /// W of sliding-window attention in the blocks `layerTypes` marks "sliding_attention" (every
    /// block when `layerTypes` is nil); nil for none.
    public var slidingWindow: Int?
    /// "full_attention" or "sliding_attention" per block (Hugging Face's `layer_types`).
    public var layerTypes: [String]?
    public var hiddenAct = "silu"
    /// The attention scores' scale is this to the power −½ (Gemma's `query_pre_attn_scalar`); nil: HS.
    public var queryPreAttnScalar: Double?
    /// Soft caps c of the attention scores and of the logits, x → c·tanh(x/c) (Gemma 2); nil for none.
    public var attnLogitSoftcapping: Double?
    public var finalLogitSoftcapping: Double?
    /// The rotary base of the sliding-window blocks, whose rotary embedding is unscaled (Gemma 3:
    /// `rope_local_base_freq`); nil: every block uses `ropeTheta` and `ropeScaling`.
    public var ropeLocalBaseFreq: Double?
    public var tieWordEmbeddings = false
    public var bosTokenId: Int? = 1
    public var eosTokenId: Int? = 2
    public var padTokenId: Int?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads", headDim = "head_dim"
        case maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling", ropeParameters = "rope_parameters", attentionBias = "attention_bias", mlpBias = "mlp_bias", hiddenAct = "hidden_act"
        case tieWordEmbeddings = "tie_word_embeddings", bosTokenId = "bos_token_id", eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id", slidingWindow = "sliding_window", layerTypes = "layer_types"
        case useSlidingWindow = "use_sliding_window", maxWindowLayers = "max_window_layers"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings", partialRotaryFactor = "partial_rotary_factor"
        case hiddenActivation = "hidden_activation", queryPreAttnScalar = "query_pre_attn_scalar"
        case attnLogitSoftcapping = "attn_logit_softcapping", finalLogitSoftcapping = "final_logit_softcapping"
        case ropeLocalBaseFreq = "rope_local_base_freq", slidingWindowPattern = "sliding_window_pattern"
        case useBidirectionalAttention = "use_bidirectional_attention"
    }

    /// Gemma 3's `rope_parameters` in transformers ≥ 5: one set per layer type.
    private enum LayerTypeKeys: String, CodingKey { case full = "full_attention", sliding = "sliding_attention" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LlamaConfig()
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads)
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? variant.defaultHeadDim
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? d.rmsNormEps
        // Transformers ≥ 5 writes `rope_parameters` (theta and scaling together); older
        // configs have `rope_theta` and `rope_scaling`.
        // Gemma 3 keeps a set per layer type there (the sliding blocks' unscaled, with their own base).
        let perLayerType = c.contains(.ropeParameters)
            ? try? c.nestedContainer(keyedBy: LayerTypeKeys.self, forKey: .ropeParameters) : nil
        let byLayerType = perLayerType.map { $0.contains(.full) || $0.contains(.sliding) } ?? false
        let full = try byLayerType ? perLayerType?.decodeIfPresent(RopeScaling.self, forKey: .full) : nil
        let sliding = try byLayerType ? perLayerType?.decodeIfPresent(RopeScaling.self, forKey: .sliding) : nil
        let parameters = try byLayerType ? full : c.decodeIfPresent(RopeScaling.self, forKey: .ropeParameters)
        if let sliding, sliding.ropeType != "default" {
            throw DecodingError.dataCorruptedError(forKey: .ropeParameters, in: c, debugDescription:
                "rope_parameters.sliding_attention of type '\(sliding.ropeType)' is not supported (default is)")
        }
        ropeLocalBaseFreq = try sliding?.ropeTheta ?? c.decodeIfPresent(Double.self, forKey: .ropeLocalBaseFreq)
            ?? variant.defaultLocalRopeTheta
        ropeTheta = try parameters?.ropeTheta ?? c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? variant.defaultRopeTheta
            ?? d.ropeTheta
        var scaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling) ?? parameters
        // The rotary fraction may sit beside `rope_scaling` (and is kept, to be refused, when not 1).
        let partial = try scaling?.partialRotaryFactor ?? c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
        if scaling?.ropeType == "default", (partial ?? 1) == 1 { scaling = nil }
        if let partial, partial != 1 {
            scaling = scaling ?? RopeScaling(ropeType: "default", factor: 1)
            scaling?.partialRotaryFactor = partial
        }
        // Phi-3 keeps LongRoPE's pretraining context beside `rope_scaling`.
        if scaling?.isLongRoPE == true, scaling?.originalMaxPositionEmbeddings == nil {
            scaling?.originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
                ?? LlamaVariant.named(modelType).defaultOriginalMaxPositionEmbeddings
        }
        ropeScaling = scaling
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? d.attentionBias
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? d.mlpBias
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenActivation) ?? c.decodeIfPresent(String.self, forKey: .hiddenAct)
            ?? variant.defaultHiddenAct
        queryPreAttnScalar = try c.decodeIfPresent(Double.self, forKey: .queryPreAttnScalar) ?? variant.defaultQueryPreAttnScalar
        // An absent cap is the variant's default, an explicit null none (as Hugging Face reads them).
        finalLogitSoftcapping = try c.contains(.finalLogitSoftcapping)
            ? c.decodeIfPresent(Double.self, forKey: .finalLogitSoftcapping) : variant.defaultFinalLogitSoftcap
        attnLogitSoftcapping = try c.contains(.attnLogitSoftcapping)
            ? c.decodeIfPresent(Double.self, forKey: .attnLogitSoftcapping) : variant.defaultAttentionSoftcap
        if variant.ignoresAttentionSoftcap { attnLogitSoftcapping = nil }
        if try c.decodeIfPresent(Bool.self, forKey: .useBidirectionalAttention) == true {
            throw DecodingError.dataCorruptedError(forKey: .useBidirectionalAttention, in: c, debugDescription:
                "use_bidirectional_attention is not supported (ZOTune trains causal language models)")
        }
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId) ?? d.bosTokenId
        // Instruct models list several end tokens; the first is the one generation pads with.
        eosTokenId = try (try? c.decodeIfPresent(Int.self, forKey: .eosTokenId))
            ?? c.decodeIfPresent([Int].self, forKey: .eosTokenId)?.first ?? d.eosTokenId
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId)
        // Sliding windows as Hugging Face reads them: an absent `sliding_window` is the variant's
        // default; `use_sliding_window` false turns it off (for Qwen2 and Qwen3 it is off unless
        // set), and there, without `layer_types`, the blocks from `max_window_layers` (28) on slide.
        slidingWindow = try c.contains(.slidingWindow) ? c.decodeIfPresent(Int.self, forKey: .slidingWindow)
                                                       : variant.defaultSlidingWindow
        layerTypes = try c.decodeIfPresent([String].self, forKey: .layerTypes)
        let flagged = variant.windowNeedsFlag
        if !(try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) ?? !flagged) { slidingWindow = nil }
        if flagged, slidingWindow != nil, layerTypes == nil {
            let first = try c.decodeIfPresent(Int.self, forKey: .maxWindowLayers) ?? 28
            layerTypes = (0..<numHiddenLayers).map { $0 >= first ? "sliding_attention" : "full_attention" }
        }
        // Gemma: every p-th block global, the others sliding, without `layer_types`.
        if layerTypes == nil,
           let pattern = try c.decodeIfPresent(Int.self, forKey: .slidingWindowPattern) ?? variant.defaultSlidingPattern {
            layerTypes = Self.layerTypes(blocks: numHiddenLayers, globalEvery: pattern)
        }
    }

    /// Writes Hugging Face's field names (`rope_theta` and `rope_scaling`, which every
    /// transformers version reads).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(kvHeads, forKey: .numKeyValueHeads)
        try c.encode(headSize, forKey: .headDim)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encodeIfPresent(ropeScaling, forKey: .ropeScaling)
        if ropeScaling?.isLongRoPE == true {
            try c.encodeIfPresent(ropeScaling?.originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
        }
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encode(mlpBias, forKey: .mlpBias)
        try c.encode(hiddenAct, forKey: variant.defaultHiddenAct == "silu" ? .hiddenAct : .hiddenActivation)
        try c.encodeIfPresent(queryPreAttnScalar, forKey: .queryPreAttnScalar)
        try c.encodeIfPresent(ropeLocalBaseFreq, forKey: .ropeLocalBaseFreq)
        if variant.defaultFinalLogitSoftcap != nil || finalLogitSoftcapping != nil {
            try c.encode(finalLogitSoftcapping, forKey: .finalLogitSoftcapping)  // null too: the variant's default is not ours
        }
        if variant.defaultAttentionSoftcap != nil || attnLogitSoftcapping != nil {
            try c.encode(attnLogitSoftcapping, forKey: .attnLogitSoftcapping)
        }
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        try c.encodeIfPresent(eosTokenId, forKey: .eosTokenId)
        try c.encodeIfPresent(padTokenId, forKey: .padTokenId)
        if variant.defaultSlidingWindow != nil || slidingWindow != nil {
            try c.encode(slidingWindow, forKey: .slidingWindow)  // null too: the variant's default is not ours
            try c.encode(slidingWindow != nil, forKey: .useSlidingWindow)
        }
        // Qwen2 and Qwen3 would read a window without `layer_types` as from block 28 on.
        let types = layerTypes ?? (variant.windowNeedsFlag && slidingWindow != nil
            ? (0..<numHiddenLayers).map { window(block: $0) > 0 ? "sliding_attention" : "full_attention" } : nil)
        try c.encodeIfPresent(types, forKey: .layerTypes)
    }

    /// How this `model_type` differs from Llama.
    public var variant: LlamaVariant { LlamaVariant.named(modelType) }

    /// Whether q, k and v have biases (Llama's `attention_bias`, always for Qwen2).
    public var qkvBias: Bool { attentionBias || variant.qkvBias }

    /// Rotary tables among the model's constants: 2 with LongRoPE (short, long) or a local base
    /// (global, local), else 1.
    var rotaryTables: Int { ropeScaling?.isLongRoPE == true || ropeLocalBaseFreq != nil ? 2 : 1 }

    /// The gated MLP's function (`hidden_act`).
    var gateFunction: GateFunction { hiddenAct == "silu" ? .silu : .geluTanh }

    /// The attention scores' scale: `query_pre_attn_scalar`^−½, else 1/√HS.
    public var attentionScale: Float {
        queryPreAttnScalar.map { Float(1 / $0.squareRoot()) } ?? 1 / Float(headSize).squareRoot()
    }

    /// W of block `index`'s sliding window, 0 for full attention.
    public func window(block index: Int) -> Int {
        guard let slidingWindow, isSliding(block: index) else { return 0 }
        return slidingWindow
    }

    /// Whether `layer_types` marks block `index` "sliding_attention" (every block without it).
    func isSliding(block index: Int) -> Bool {
        layerTypes.map { index < $0.count && $0[index] == "sliding_attention" } ?? true
    }

    /// Gemma's `layer_types` without the key: every p-th block global, the others sliding.
    static func layerTypes(blocks: Int, globalEvery pattern: Int) -> [String] {
        (0..<blocks).map { ($0 + 1) % pattern == 0 ? "full_attention" : "sliding_attention" }
    }

    /// NKV.
    public var kvHeads: Int { numKeyValueHeads ?? numAttentionHeads }
    /// HS.
    public var headSize: Int { headDim ?? hiddenSize / numAttentionHeads }

    /// Checks the sizes (each in 1...2^24), before anything is derived from them; `path` is named in the error.
    func validateSizes(path: String) throws(ModelError) {
        func require(_ condition: Bool, _ reason: String) throws(ModelError) {
            if !condition { throw .config(path: path, reason: reason) }
        }
        for (name, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                              ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                              ("max_position_embeddings", maxPositionEmbeddings)] {
            try require(value > 0 && value <= 1 << 24, "\(name) = \(value) is out of range")
        }
        // Derived from the fields above (head_dim defaults to hidden_size / num_attention_heads).
        for (name, value) in [("num_key_value_heads", kvHeads), ("head_dim", headSize)] {
            try require(value > 0 && value <= 1 << 24, "\(name) = \(value) is out of range")
        }
    }

    /// Checks the fields the model relies on; `path` is named in the error.
    public func validate(path: String) throws(ModelError) {
        func require(_ condition: Bool, _ reason: String) throws(ModelError) {
            if !condition { throw .config(path: path, reason: reason) }
        }
        try validateSizes(path: path)
        try require(numAttentionHeads % kvHeads == 0,
                    "num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(kvHeads)")
        try require(headSize % 2 == 0, "head size \(headSize) must be even for rotary embeddings")
        try require(ropeTheta > 0 && rmsNormEps > 0, "rope_theta and rms_norm_eps must be positive")
        try require((slidingWindow ?? 1) > 0, "sliding_window = \(slidingWindow ?? 0) must be positive")
        if let layerTypes {
            try require(layerTypes.count >= numHiddenLayers, "layer_types has \(layerTypes.count) entries for \(numHiddenLayers) layers")
            if let bad = layerTypes.first(where: { !["full_attention", "sliding_attention"].contains($0) }) {
                throw .unsupported(path: path, reason: "layer type '\(bad)' (full_attention and sliding_attention are)")
            }
        }
        guard ["silu", "gelu_pytorch_tanh"].contains(hiddenAct) else {
            throw .unsupported(path: path, reason: "hidden_act '\(hiddenAct)' (silu and gelu_pytorch_tanh are)")
        }
        for (name, value) in [("query_pre_attn_scalar", queryPreAttnScalar), ("attn_logit_softcapping", attnLogitSoftcapping),
                              ("final_logit_softcapping", finalLogitSoftcapping), ("rope_local_base_freq", ropeLocalBaseFreq)] {
            try require((value ?? 1) > 0, "\(name) = \(value ?? 0) must be positive")
        }
        if ropeLocalBaseFreq != nil, ropeScaling?.isLongRoPE == true {
            throw .unsupported(path: path, reason: "LongRoPE with a local rotary base")
        }
        if let scaling = ropeScaling, !["default", "linear", "llama3", "longrope", "su"].contains(scaling.ropeType) {
            throw .unsupported(path: path, reason: "rope_scaling type '\(scaling.ropeType)' (default, linear, llama3 and longrope are)")
        }
        if let partial = ropeScaling?.partialRotaryFactor, partial != 1 {
            throw .unsupported(path: path, reason: "partial_rotary_factor \(partial) (rotary embeddings over the whole head only)")
        }
        if let scaling = ropeScaling, scaling.isLongRoPE {
            for (name, factors) in [("short_factor", scaling.shortFactor), ("long_factor", scaling.longFactor)] {
                try require(factors?.count == headSize / 2, "rope_scaling.\(name) needs \(headSize / 2) values (head size / 2)")
            }
            try require((scaling.originalMaxPositionEmbeddings ?? 0) > 0, "longrope needs original_max_position_embeddings")
        }
    }

    /// Reads and validates `config.json` at `path`.
    public static func load(path: String) throws(ModelError) -> LlamaConfig {
        let config: LlamaConfig
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            config = try JSONDecoder().decode(LlamaConfig.self, from: data)
        } catch {
            throw .config(path: path, reason: "not a valid Llama config.json (\(error))")
        }
        try config.validate(path: path)
        return config
    }

    /// LongRoPE as llama.cpp writes it for Phi-3: the factors as tensors [HS/2], the pretraining
    /// context and the attention factor as keys.
    private static func longRoPE(_ file: GGUFFile, arch: String, headSize: Int) throws -> RopeScaling {
        func factors(_ name: String) throws -> [Double] {
            var values = [Float](repeating: 0, count: headSize / 2)
            try values.withUnsafeMutableBufferPointer { try file.readFloats(name, expectedShape: [headSize / 2], into: $0.baseAddress!) }
            return values.map(Double.init)
        }
        var scaling = RopeScaling(ropeType: "longrope", factor: 1,
                                  originalMaxPositionEmbeddings: try file.int(arch + ".rope.scaling.original_context_length"))
        scaling.shortFactor = try factors("rope_factors_short.weight")
        scaling.longFactor = try factors("rope_factors_long.weight")
        scaling.attentionFactor = file.metadata[arch + ".rope.scaling.attn_factor"]?.double
        return scaling
    }

    /// The configuration a GGUF file's `llama.*` (or `<arch>.*`) keys describe.
    public static func from(gguf file: GGUFFile) throws(ModelError) -> LlamaConfig {
        do {
            let arch = try file.string("general.architecture")
            var config = LlamaConfig()
            config.modelType = LlamaVariant.all.first { $0.ggufArchitecture == arch }?.modelType ?? config.modelType
            config.numHiddenLayers = try file.int(arch + ".block_count")
            config.hiddenSize = try file.int(arch + ".embedding_length")
            config.intermediateSize = try file.int(arch + ".feed_forward_length")
            config.numAttentionHeads = try file.int(arch + ".attention.head_count")
            config.numKeyValueHeads = file.metadata[arch + ".attention.head_count_kv"]?.int ?? config.numAttentionHeads
            config.maxPositionEmbeddings = try file.int(arch + ".context_length")
            config.rmsNormEps = try file.double(arch + ".attention.layer_norm_rms_epsilon")
            config.ropeTheta = file.metadata[arch + ".rope.freq_base"]?.double ?? 10000
            config.vocabSize = try file.metadata[arch + ".vocab_size"]?.int ?? file.strings("tokenizer.ggml.tokens").count
            if let keyLength = file.metadata[arch + ".attention.key_length"]?.int { config.headDim = keyLength }
            try config.validateSizes(path: file.path)  // before the head size divides anything
            if let type = file.metadata[arch + ".rope.scaling.type"]?.string, type != "none" {
                config.ropeScaling = RopeScaling(ropeType: type, factor: file.metadata[arch + ".rope.scaling.factor"]?.double ?? 1,
                                                 originalMaxPositionEmbeddings: file.metadata[arch + ".rope.scaling.original_context_length"]?.int)
            }
            config.tieWordEmbeddings = file.info("output.weight") == nil
            if let window = file.metadata[arch + ".attention.sliding_window"]?.int, window > 0 { config.slidingWindow = window }
            if let info = file.info("rope_freqs.weight"), config.ropeScaling == nil {  // llama.cpp's llama3 scaling table
                var factors = [Float](repeating: 0, count: info.elementCount)
                try factors.withUnsafeMutableBufferPointer {
                    try file.readFloats("rope_freqs.weight", expectedShape: [config.headSize / 2], into: $0.baseAddress!)
                }
                guard let scaling = config.llama3Scaling(fromFrequencyFactors: factors) else {
                    throw ModelError.unsupported(path: file.path, reason: "rope_freqs.weight that is not Llama 3's table "
                                                 + "(factor = its largest value, low 1, high 4, 8192 positions)")
                }
                config.ropeScaling = scaling
            }
                        if file.info("rope_factors_long.weight") != nil {
                config.ropeScaling = try longRoPE(file, arch: arch, headSize: config.headSize)
            }
            // Biases are tensors there, not keys: o_proj's means `attention_bias` (all four projections).
            config.attentionBias = file.info("blk.0.attn_output.bias") != nil
            config.mlpBias = file.info("blk.0.ffn_up.bias") != nil
            config.bosTokenId = file.metadata["tokenizer.ggml.bos_token_id"]?.int
            config.eosTokenId = file.metadata["tokenizer.ggml.eos_token_id"]?.int
            config.padTokenId = file.metadata["tokenizer.ggml.padding_token_id"]?.int
            let variant = config.variant
            if variant.normWeightOffset != 0 {  // Gemma: what llama.cpp's runtime assumes
                config.hiddenAct = variant.defaultHiddenAct
                // Missing keys (early Gemma 2 files) mean llama.cpp's defaults, which are Hugging Face's.
                config.finalLogitSoftcapping = file.metadata[arch + ".final_logit_softcapping"]?.double
                    ?? variant.defaultFinalLogitSoftcap
                config.attnLogitSoftcapping = variant.ignoresAttentionSoftcap ? nil
                    : file.metadata[arch + ".attn_logit_softcapping"]?.double ?? variant.defaultAttentionSoftcap
                config.slidingWindow = config.slidingWindow ?? variant.defaultSlidingWindow
                let wide = config.numHiddenLayers == variant.ggufWideQueryScaleBlocks
                config.queryPreAttnScalar = Double(wide ? config.hiddenSize / config.numAttentionHeads : config.headSize)
                config.ropeLocalBaseFreq = file.metadata[arch + ".rope.freq_base_swa"]?.double ?? variant.defaultLocalRopeTheta
                config.layerTypes = variant.defaultSlidingPattern.map {
                    Self.layerTypes(blocks: config.numHiddenLayers, globalEvery: $0)
                }
            }
            if let dims = file.metadata[arch + ".rope.dimension_count"]?.int, dims != config.headSize {
                throw ModelError.unsupported(path: file.path, reason: "partial rotary embeddings (\(dims) of \(config.headSize) dimensions)")
            }
            try config.validate(path: file.path)
            return config
        } catch let error as GGUFError {
            throw .gguf(error)
        } catch let error as ModelError {
            throw error
        } catch {
            throw .config(path: file.path, reason: "\(error)")
        }
    }
}
