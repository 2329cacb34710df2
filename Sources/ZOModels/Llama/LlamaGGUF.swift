#if canImport(Glibc)
import Glibc
#endif
import ZOCore
import ZOFormats

/// Llama and its variants in llama.cpp's GGUF layout, both ways: q/k rows interleaved per head
/// (Llama, Mistral), Gemma's norm weights stored as 1 + w, Phi-3's LongRoPE factors as tensors.
extension LlamaModel: GGUFExportable {
    /// Loads a GGUF file (`general.architecture` one of the variants'), dequantizing every tensor
    /// to fp32 and undoing llama.cpp's interleaving of the q/k projection rows so that the weights
    /// are exactly those Hugging Face's GGUF loader produces.
    public static func load(gguf file: GGUFFile, blockStorage: HostStorage = .memory) throws(ModelError) -> LlamaModel {
        let config = try LlamaConfig.from(gguf: file), variant = config.variant
        try WeightPreflight.check(file, blocks: config.numHiddenLayers, layouts: { LlamaOffsets.layouts(config).layouts }) {
            LlamaOffsets.ggufName($0.name, sandwichNorms: variant.sandwichNorms)
        }
        let model = try LlamaModel(config: config, blockStorage: blockStorage)
        do {
            for group in model.groups {
                for spec in group.layout.specs {
                    let name = LlamaOffsets.ggufName(spec.name, sandwichNorms: variant.sandwichNorms)
                    let target = group.values(spec)
                    try file.readFloats(name, expectedShape: spec.shape, into: target.baseAddress!)
                    if spec.kind == .norm, variant.normWeightOffset != 0 {  // stored as offset + weight
                        for i in target.indices { target[i] -= variant.normWeightOffset }
                    }
                    if let heads = model.interleavedHeads(name) {
                        let stored = Array(target), width = spec.count / spec.shape[0]
                        for (row, source) in interleavedRows(rows: spec.shape[0], heads: heads).enumerated() {
                            for k in 0..<width { target[row * width + k] = stored[source * width + k] }
                        }
                    }
                }
            }
        } catch {
            throw .gguf(error)
        }
        return model
    }

    public func ggufHyperparameters() throws(ModelError) -> (architecture: String, keys: [(key: String, value: GGUFValue)]) {
        try config.ggufHyperparameters()
    }

    public var specialTokenIds: (bos: Int?, eos: Int?, pad: Int?) { (config.bosTokenId, config.eosTokenId, config.padTokenId) }

    public func ggufTensors() -> [GGUFModelTensor] {
        let variant = config.variant
        var tensors: [GGUFModelTensor] = []
        for group in groups {
            for spec in group.layout.specs {
                let name = LlamaOffsets.ggufName(spec.name, sandwichNorms: variant.sandwichNorms)
                let heads = interleavedHeads(name)
                tensors.append(GGUFModelTensor(name: name, shape: spec.shape, isMatrix: spec.shape.count == 2) {
                    var values = Array(group.values(spec))
                    if spec.kind == .norm { values = values.map { $0 + variant.normWeightOffset } }
                    guard let heads else { return values }
                    let width = spec.count / spec.shape[0]
                    let rows = Self.interleavedRows(rows: spec.shape[0], heads: heads)
                    var stored = values
                    for (row, target) in rows.enumerated() {
                        stored.replaceSubrange(target * width..<(target + 1) * width, with: values[row * width..<(row + 1) * width])
                    }
                    return stored
                })
            }
        }
        if config.ropeScaling?.ropeType == "llama3" {  // llama.cpp divides each inverse frequency by its factor
            let factors = config.ropeFrequencyFactors
            tensors.append(GGUFModelTensor(name: "rope_freqs.weight", shape: [factors.count], isMatrix: false) { factors })
        }
        if let scaling = config.ropeScaling, scaling.isLongRoPE {
            for (name, factors) in [("rope_factors_long.weight", scaling.longFactor), ("rope_factors_short.weight", scaling.shortFactor)] {
                let values = (factors ?? []).map(Float.init)
                tensors.append(GGUFModelTensor(name: name, shape: [values.count], isMatrix: false) { values })
            }
        }
        return tensors
    }

    /// The head count of a q or k projection tensor whose rows llama.cpp interleaves, else nil.
    private func interleavedHeads(_ ggufName: String) -> Int? {
        guard config.variant.permutesQueryKey else { return nil }
        if ggufName.hasSuffix("attn_q.weight") || ggufName.hasSuffix("attn_q.bias") { return config.numAttentionHeads }
        if ggufName.hasSuffix("attn_k.weight") || ggufName.hasSuffix("attn_k.bias") { return config.kvHeads }
        return nil
    }

    /// For each Hugging Face row of a q or k projection, the GGUF row it is stored in: llama.cpp
    /// interleaves each head's rotary halves, so HF row h·2·D + j·D + i is GGUF row h·2·D + 2i + j.
    static func interleavedRows(rows: Int, heads: Int) -> [Int] {
        let half = rows / heads / 2
        return (0..<rows).map { row in
            let (h, rest) = row.quotientAndRemainder(dividingBy: 2 * half)
            let (j, i) = rest.quotientAndRemainder(dividingBy: half)
            return h * 2 * half + 2 * i + j
        }
    }
}

extension LlamaConfig {
    /// llama.cpp's `general.architecture` and `<arch>.*` keys for this configuration, as its
    /// converter writes them and `from(gguf:)` reads them back; throws for what GGUF cannot say.
    func ggufHyperparameters() throws(ModelError) -> (architecture: String, keys: [(key: String, value: GGUFValue)]) {
        let variant = self.variant
        guard let arch = variant.ggufArchitecture else {
            throw .unsupported(path: "config", reason: "GGUF export of \(modelType) (llama.cpp has no such architecture)")
        }
        func refuse(_ what: String) -> ModelError { .unsupported(path: "config", reason: "GGUF export of \(modelType) with \(what)") }
        var keys: [(key: String, value: GGUFValue)] = []
        func add(_ key: String, _ value: Int) { keys.append((arch + "." + key, .uint32(UInt32(value)))) }
        func add(_ key: String, _ value: Double) { keys.append((arch + "." + key, .float32(Float(value)))) }
        add("context_length", maxPositionEmbeddings)
        add("embedding_length", hiddenSize)
        add("block_count", numHiddenLayers)
        add("feed_forward_length", intermediateSize)
        add("attention.head_count", numAttentionHeads)
        add("attention.head_count_kv", kvHeads)
        add("attention.key_length", headSize)
        add("attention.value_length", headSize)
        add("rope.dimension_count", headSize)
        add("rope.freq_base", ropeTheta)
        add("attention.layer_norm_rms_epsilon", rmsNormEps)
        add("vocab_size", vocabSize)
        if let scaling = ropeScaling, scaling.ropeType != "default" {
            switch scaling.ropeType {
            case "linear":
                keys.append((arch + ".rope.scaling.type", .string("linear")))
                add("rope.scaling.factor", scaling.factor)
            case "longrope", "su":
                add("rope.scaling.original_context_length", scaling.originalMaxPositionEmbeddings ?? maxPositionEmbeddings)
                if let factor = scaling.attentionFactor { add("rope.scaling.attn_factor", factor) }
            case "llama3":
                break  // the rope_freqs.weight tensor
            default:
                throw refuse("rope_scaling '\(scaling.ropeType)'")
            }
        }
        // Windows: llama.cpp slides every block, or Gemma's fixed pattern of blocks.
        let gemma = variant.normWeightOffset != 0
        if let window = slidingWindow {
            var assumed = self
            assumed.layerTypes = variant.defaultSlidingPattern.map { Self.layerTypes(blocks: numHiddenLayers, globalEvery: $0) }
            guard (0..<numHiddenLayers).allSatisfy({ isSliding(block: $0) == assumed.isSliding(block: $0) }) else {
                throw refuse("sliding windows in blocks \(layerTypes ?? []) (llama.cpp slides \(gemma ? "a fixed pattern" : "every block"))")
            }
            add("attention.sliding_window", window)
        } else if gemma {
            throw refuse("no sliding window (llama.cpp always slides Gemma's local blocks)")
        }
        if gemma {
            let wide = numHiddenLayers == variant.ggufWideQueryScaleBlocks
            guard (queryPreAttnScalar ?? Double(headSize)) == Double(wide ? hiddenSize / numAttentionHeads : headSize) else {
                throw refuse("query_pre_attn_scalar \(queryPreAttnScalar ?? 0) (llama.cpp scales by the head size; "
                             + "by C / NH for the \(variant.ggufWideQueryScaleBlocks ?? 0)-block size)")
            }
            guard (finalLogitSoftcapping == nil) == (variant.defaultFinalLogitSoftcap == nil),
                  variant.ignoresAttentionSoftcap || (attnLogitSoftcapping == nil) == (variant.defaultAttentionSoftcap == nil) else {
                throw refuse("soft caps turned off (llama.cpp applies them when the keys are missing)")
            }
            if let cap = finalLogitSoftcapping { add("final_logit_softcapping", cap) }
            if let cap = attnLogitSoftcapping, !variant.ignoresAttentionSoftcap { add("attn_logit_softcapping", cap) }
            if let local = ropeLocalBaseFreq { add("rope.freq_base_swa", local) }
        }
        return (arch, keys)
    }

    /// Per rotary frequency, the unscaled inverse frequency over the scaled one: llama.cpp's
    /// `rope_freqs.weight` [HS/2] (its converter's table for llama3 scaling), from the same
    /// arithmetic the model's rotary table uses.
    public var ropeFrequencyFactors: [Float] {
        let unscaled = (0..<headSize / 2).map { i in 1 / Float(pow(ropeTheta, Double(Float(2 * i) / Float(headSize)))) }
        return zip(unscaled, LlamaModel.scale(unscaled, ropeScaling)).map { $0 / $1 }
    }

    /// The llama3 scaling whose `ropeFrequencyFactors` are `factors` (a GGUF's rope_freqs.weight),
    /// among Llama 3's parameters (the largest factor, low 1, high 4, 8192 positions), or nil.
    func llama3Scaling(fromFrequencyFactors factors: [Float]) -> RopeScaling? {
        guard let largest = factors.max(), factors.count == headSize / 2 else { return nil }
        var candidate = self
        candidate.ropeScaling = RopeScaling(ropeType: "llama3", factor: Double(largest), lowFreqFactor: 1, highFreqFactor: 4,
                                            originalMaxPositionEmbeddings: 8192)
        let matches = zip(candidate.ropeFrequencyFactors, factors).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }
        return matches ? candidate.ropeScaling : nil
    }
}
