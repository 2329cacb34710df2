import ZOCore
import ZOFormats

/// How a Llama-like `model_type` differs from Llama itself: what its config.json leaves
/// implicit and how llama.cpp writes it. Each variant's family declares one (`Qwen2Family`,
/// `MistralFamily`, …).
public struct LlamaVariant: Sendable {
    /// Hugging Face's `model_type`.
    public var modelType: String
    /// q, k and v have biases whatever `attention_bias` says, o_proj none (Qwen2).
    public var qkvBias = false
    /// An RMSNorm over each head of q and of k [HS] before the rotary embedding (Qwen3).
    public var queryKeyNorm = false
    /// The sliding window when config.json has no `sliding_window` key (Hugging Face's default).
    public var defaultSlidingWindow: Int?
    /// Windows only with `use_sliding_window` (default off), from `max_window_layers` on (Qwen2, Qwen3).
    public var windowNeedsFlag = false
    /// `head_dim` when config.json has none (Qwen3: 128), else C / NH.
    public var defaultHeadDim: Int?
    /// GGUF `general.architecture` of its llama.cpp conversion.
    public var ggufArchitecture: String?
    /// Whether llama.cpp's converter interleaves the rotary halves of q/k rows (Llama, Mistral).
    public var permutesQueryKey = true
    /// q|k|v and gate|up stored as one tensor each (`qkv_proj`, `gate_up_proj`: Phi-3).
    public var fusedProjections = false
    /// LongRoPE's pretraining context when config.json does not say (Phi-3: 4096).
    public var defaultOriginalMaxPositionEmbeddings: Int?

    // Gemma's differences, all off for the others.
    /// Added to every RMSNorm weight, whose values are stored around 0 (Gemma: 1); llama.cpp's
    /// converter stores the sums.
    public var normWeightOffset: Float = 0
    /// Embeddings multiplied by √C (Gemma).
    public var scalesEmbeddings = false
    /// An RMSNorm on the attention's and on the MLP's output before each residual add, beside
    /// the ones on their inputs (Gemma 2/3: post_attention_layernorm is the attention's output norm,
    /// pre_feedforward_layernorm the MLP's input norm).
    public var sandwichNorms = false
    /// `hidden_act` (Gemma: `hidden_activation`) when config.json has none.
    public var defaultHiddenAct = "silu"
    /// `rope_theta` when config.json has none (else 10000).
    public var defaultRopeTheta: Double?
    /// `query_pre_attn_scalar`, `final_logit_softcapping`, `attn_logit_softcapping`,
    /// `rope_local_base_freq` when config.json has none.
    public var defaultQueryPreAttnScalar: Double?
    public var defaultFinalLogitSoftcap: Double?
    public var defaultAttentionSoftcap: Double?
    public var defaultLocalRopeTheta: Double?
    /// Hugging Face's model never applies `attn_logit_softcapping` (Gemma 3).
    public var ignoresAttentionSoftcap = false
    /// Every p-th block global, the others sliding, when config.json has no `layer_types`
    /// (Gemma 2: 2, Gemma 3: 6 or `sliding_window_pattern`; llama.cpp assumes the same).
    public var defaultSlidingPattern: Int?
    /// The block count of the size whose GGUF llama.cpp scales attention by (C/NH)^−½ instead of
    /// HS^−½ (the 27B models); GGUF files do not carry `query_pre_attn_scalar`.
    public var ggufWideQueryScaleBlocks: Int?

    /// Every Llama-like variant: those of the registry's families.
    public static let all = ModelRegistry.families.compactMap { ($0 as? any LlamaVariantFamily.Type)?.variant }

    /// The variant of `modelType` (Llama's when unknown: the registry refuses unknown types first).
    public static func named(_ modelType: String) -> LlamaVariant {
        all.first { $0.modelType == modelType } ?? LlamaFamily.variant
    }
}

/// A family that runs on `LlamaModel`: its `model_type` and GGUF architecture are its
/// variant's, and it loads as `LlamaModel` does.
public protocol LlamaVariantFamily: ModelFamily {
    static var variant: LlamaVariant { get }
}

extension LlamaVariantFamily {
    public static var modelTypes: [String] { [variant.modelType] }
    public static var ggufArchitectures: [String] { variant.ggufArchitecture.map { [$0] } ?? [] }

    public static func load(directory: String, blockStorage: HostStorage) throws(ModelError) -> any CausalLM {
        try LlamaModel.load(directory: directory, blockStorage: blockStorage)
    }

    public static func load(gguf file: GGUFFile, blockStorage: HostStorage) throws(ModelError) -> any CausalLM {
        try LlamaModel.load(gguf: file, blockStorage: blockStorage)
    }
}
