#if canImport(Glibc)
import Glibc
#endif
import ZOCore
import ZOFormats

/// The Llama family (Llama 2/3, SmolLM2, …): RMSNorm, rotary position embeddings, SwiGLU MLP,
/// grouped-query attention, tied or untied LM head. Mirrors Hugging Face's
/// `LlamaForCausalLM` in fp32; loads from safetensors + config.json or from GGUF. The
/// variants of `LlamaVariant` (Mistral, Qwen2/3, Phi-3, Gemma 2/3) run on it too.
public final class LlamaModel: CausalLM, Sendable {
    public let config: LlamaConfig
    public let embedding: ParameterGroup
    public let blocks: [ParameterGroup]
    public let head: ParameterGroup
    let offsets: LlamaOffsets

    /// A model with the layout of `config` and zeroed parameters, its blocks in `blockStorage`.
    public init(config: LlamaConfig, blockStorage: HostStorage = .memory) throws(ModelError) {
        try config.validate(path: "config")
        self.config = config
        let (layouts, offsets) = LlamaOffsets.layouts(config)
        self.offsets = offsets
        (embedding, blocks, head) = try ParameterGroup.allocate(layouts, blockStorage: blockStorage)
    }

    public var vocabSize: Int { config.vocabSize }
    public var hiddenSize: Int { config.hiddenSize }
    public var maxSequenceLength: Int { config.maxPositionEmbeddings }
    public var padTokenId: Int { config.padTokenId ?? config.eosTokenId ?? 0 }
    public var kvWidth: Int { config.kvHeads * config.headSize }
    public var unitNormWeight: Float { 1 - config.variant.normWeightOffset }

    public func configJSON() throws -> [UInt8] {
        try encodeConfig(config, floatKeys: ["final_logit_softcapping", "attn_logit_softcapping"])
    }

    // MARK: Loading

    /// Loads `config.json` and the safetensors weights of a Hugging Face Llama folder.
    public static func load(directory: String, blockStorage: HostStorage = .memory) throws(ModelError) -> LlamaModel {
        let configPath = directory + "/config.json"
        let config = try LlamaConfig.load(path: configPath)
        let checkpoint: SafetensorsCheckpoint
        do { checkpoint = try SafetensorsCheckpoint(directory: directory) } catch { throw .weights(error) }
        try WeightPreflight.check(checkpoint, blocks: config.numHiddenLayers, configPath: configPath) {
            LlamaOffsets.layouts(config).layouts
        }
        let model = try LlamaModel(config: config, blockStorage: blockStorage)
        do {
            for group in model.groups {
                for spec in group.layout.specs {
                    try checkpoint.readFloats(spec.name, expectedShape: spec.shape, into: group.values(spec).baseAddress!)
                }
            }
        } catch {
            throw .weights(error)
        }
        return model
    }

    // MARK: Rotary table

    /// cos and sin of position · inverse frequency, [maxPositions, HS] (HS/2 cosines then HS/2
    /// sines per position), computed in fp32 the way Hugging Face's rotary embedding does. With
    /// LongRoPE, two such tables: the short factors' then the long factors' (scaled by the
    /// attention factor), and `positions(for:past:)` picks one per batch. With a local base
    /// (Gemma 3), the global table then the sliding blocks' unscaled one.
    public var constants: [Float] {
        let half = config.headSize / 2
        func inverseFrequencies(_ theta: Double) -> [Float] {
            (0..<half).map { i -> Float in
                let exponent = Float(2 * i) / Float(config.headSize)
                return 1 / Float(pow(theta, Double(exponent)))
            }
        }
        let global = Self.scale(inverseFrequencies(config.ropeTheta), config.ropeScaling)
        if let local = config.ropeLocalBaseFreq {
            return [global, inverseFrequencies(local)].flatMap { Self.rotaryTable($0, positions: config.maxPositionEmbeddings) }
        }
        guard let scaling = config.ropeScaling, scaling.isLongRoPE,
              let short = scaling.shortFactor, let long = scaling.longFactor else {
            return Self.rotaryTable(global, positions: config.maxPositionEmbeddings)
        }
        let factor = Float(longRoPEAttentionFactor(scaling))
        return [short, long].flatMap { divisors in
            let frequencies = (0..<half).map { i -> Float in
                let exponent = Float(2 * i) / Float(config.headSize)
                return 1 / (Float(divisors[i]) * Float(pow(config.ropeTheta, Double(exponent))))
            }
            return Self.rotaryTable(frequencies, positions: config.maxPositionEmbeddings).map { $0 * factor }
        }
    }

    /// [positions, HS]: per position, cos of position · frequency for the HS/2 frequencies, then sin.
    private static func rotaryTable(_ frequencies: [Float], positions: Int) -> [Float] {
        let half = frequencies.count, width = 2 * half
        var table = [Float](repeating: 0, count: positions * width)
        for position in 0..<positions {
            for i in 0..<half {
                let angle = Float(position) * frequencies[i]
                table[position * width + i] = Float(cos(Double(angle)))
                table[position * width + half + i] = Float(sin(Double(angle)))
            }
        }
        return table
    }

    /// LongRoPE's scale of cos and sin: given, or √(1 + ln s / ln L₀) for the context extension
    /// s = positions / L₀ (1 when s ≤ 1), as Hugging Face computes it.
    private func longRoPEAttentionFactor(_ scaling: LlamaConfig.RopeScaling) -> Double {
        if let given = scaling.attentionFactor { return given }
        let original = Double(scaling.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings)
        let extension_ = Double(config.maxPositionEmbeddings) / original
        return extension_ <= 1 ? 1 : (1 + log(extension_) / log(original)).squareRoot()
    }


    /// Applies `rope_scaling` to the inverse frequencies (linear and llama3 as in Hugging Face).
    static func scale(_ frequencies: [Float], _ scaling: LlamaConfig.RopeScaling?) -> [Float] {
        guard let scaling else { return frequencies }
        let factor = Float(scaling.factor)
        switch scaling.ropeType {
        case "linear":
            return frequencies.map { $0 / factor }
        case "llama3":
            let low = Float(scaling.lowFreqFactor ?? 1), high = Float(scaling.highFreqFactor ?? 4)
            let original = Float(scaling.originalMaxPositionEmbeddings ?? 8192)
            let lowWavelength = original / low, highWavelength = original / high
            return frequencies.map { frequency in
                let wavelength = 2 * Float.pi / frequency
                let adjusted = wavelength > lowWavelength ? frequency / factor : frequency
                guard !(wavelength < highWavelength), !(wavelength > lowWavelength) else { return adjusted }
                let smooth = (original / wavelength - low) / (high - low)
                return (1 - smooth) * adjusted / factor + smooth * adjusted
            }
        default:
            return frequencies
        }
    }

    // MARK: Stages

    /// Positions past + t, as rows of the rotary table; with LongRoPE, rows of the long table
    /// (after the short one) when the batch reaches past the pretraining context.
    public func positions(for batch: TokenBatch, past: Int) -> [Int32] {
        var table = 0
        if let scaling = config.ropeScaling, scaling.isLongRoPE, past + batch.tokens > scaling.originalMaxPositionEmbeddings ?? .max {
            table = config.maxPositionEmbeddings
        }
        return (0..<batch.batchSize * batch.tokens).map { Int32(table + past + $0 % batch.tokens) }
    }

    public func workspaceCount(rows: Int) -> Int { rows * config.workspacePerRow }

    /// Regions of the workspace for R rows.
    struct Scratch {
        let normed, qkv, attention, gateUp, activated, heads, branch: DeviceBuffer

        /// normed [R, C], qkv [R, (NH + 2·NKV)·HS], attention [R, NH·HS], gateUp [R, 2F], activated [R, F],
        /// with a q/k norm heads [R, NH·HS] (its backward's second buffer of heads), and with sandwich
        /// norms branch [R, C] (an attention or MLP output before its norm, or that norm's input gradient).
        static func counts(rows: Int, config: LlamaConfig) -> [Int] {
            let hs = config.headSize, f = config.intermediateSize, attention = rows * config.numAttentionHeads * hs
            return [rows * config.hiddenSize, rows * (config.numAttentionHeads + 2 * config.kvHeads) * hs, attention, rows * 2 * f,
                    rows * f, config.variant.queryKeyNorm ? attention : 0, config.variant.sandwichNorms ? rows * config.hiddenSize : 0]
        }

        init(_ workspace: DeviceBuffer, rows: Int, config: LlamaConfig) {
            let r = workspace.regions(Self.counts(rows: rows, config: config))
            (normed, qkv, attention, gateUp, activated, heads, branch) = (r[0], r[1], r[2], r[3], r[4], r[5], r[6])
        }
    }

    public var tiedTokenTable: Int? { offsets.head.untiedHead == nil ? 0 : nil }

    public var blockLinears: [BlockLinear] { offsets.blockLinears(config) }

    public func embed(_ embedding: DeviceBuffer, hidden: DeviceBuffer, context: StageContext) {
        let batch = context.batch
        context.backend.gatherRows(table: embedding.floats(0, config.vocabSize * config.hiddenSize), width: config.hiddenSize,
                                   indices: batch.ids, count: batch.rows, out: hidden, accumulate: false,
                                   perturbation: context.tokenTablePerturbation)
        if let scale = embeddingScale { context.backend.scale(hidden, count: batch.rows * config.hiddenSize, by: scale) }
    }

    /// √C, the factor of Gemma's embeddings (as Hugging Face's fp32 tensor of it); nil for the others.
    var embeddingScale: Float? { config.variant.scalesEmbeddings ? Float(Double(config.hiddenSize).squareRoot()) : nil }

    /// RMSNorm of x [R, C'] with block or head weights (plus the variant's weight offset).
    func norm(_ x: DeviceBuffer, weight: DeviceBuffer, out: DeviceBuffer, rows: Int, channels: Int, backend: any Backend) {
        backend.rmsNorm(x: x, weight: weight, weightOffset: config.variant.normWeightOffset, out: out, rows: rows, channels: channels,
                        eps: Float(config.rmsNormEps))
    }

    public func block(_ index: Int, _ parameters: any BlockWeights, hidden: DeviceBuffer, context: StageContext) {
        block(index, parameters, hidden: hidden, context: context, tape: nil)
    }

    /// The block, recording its intermediates in `tape` when given (see `LlamaTape`); the same
    /// operations in the same order either way.
    public func block(_ index: Int, _ parameters: any BlockWeights, hidden: DeviceBuffer, context: StageContext, tape: DeviceBuffer?) {
        let backend = context.backend, rows = context.batch.rows
        let c = config.hiddenSize, hs = config.headSize, f = config.intermediateSize
        let heads = config.numAttentionHeads, kvHeads = config.kvHeads
        let qkvWidth = (heads + 2 * kvHeads) * hs
        let o = offsets.block
        let s = Scratch(context.workspace, rows: rows, config: config)
        let t = tape.map { LlamaTape($0, rows: rows, config: config) }
        let normed1 = t?.normed1 ?? s.normed, normed2 = t?.normed2 ?? s.normed, qkv = t?.qkv ?? s.qkv
        let attention = t?.attention ?? s.attention, gateUp = t?.gateUp ?? s.gateUp, activated = t?.activated ?? s.activated
        if let t { backend.copy(hidden, to: t.input, count: rows * c) }

        /// h += out (or with sandwich norms h += RMSNorm(out), out kept in `saved` when recording)
        /// for out [R, C] = x [R, k] · Wᵀ + b, the projection whose weights start at `weight`.
        func residual(weight: Int, bias: Int?, x: DeviceBuffer, k: Int, outputNorm: Int?, saved: DeviceBuffer?) {
            let weights = parameters.floats(weight, c * k), biases = bias.map { parameters.floats($0, c) }
            guard let outputNorm else {
                return context.linear(block: index, weightOffset: weight, x: x, weight: weights, bias: biases, out: hidden, m: rows,
                                      n: c, k: k, activation: .none, accumulate: true)
            }
            let branch = saved ?? s.branch
            context.linear(block: index, weightOffset: weight, x: x, weight: weights, bias: biases, out: branch, m: rows, n: c, k: k,
                           activation: .none, accumulate: false)
            norm(branch, weight: parameters.floats(outputNorm, c), out: s.normed, rows: rows, channels: c, backend: backend)
            backend.add(s.normed, to: hidden, count: rows * c)
        }

        // Attention: h += o_proj(attention(rotary(qkv(RMSNorm(h))))).
        norm(hidden, weight: parameters.floats(o.attentionNorm, c), out: normed1, rows: rows, channels: c, backend: backend)
        context.linear(block: index, weightOffset: o.qkvWeight, x: normed1,
                       weight: parameters.floats(o.qkvWeight, qkvWidth * c), bias: o.qkvBias.map { parameters.floats($0, qkvWidth) },
                       out: qkv, m: rows, n: qkvWidth, k: c, activation: .none, accumulate: false)
        if let norms = o.queryKeyNorm {
            normalizeQueryKeyHeads(qkv, norms: parameters.floats(norms, 2 * hs), rows: rows, scratch: s.attention, saved: t?.queryKeyInput,
                                   backend: backend)
        }
        backend.rotary(x: qkv, positions: context.batch.positions, table: rotaryTable(context, block: index),
                       rows: rows, heads: heads + kvHeads, headSize: hs, rowStride: qkvWidth)
        let inputs = attentionInputs(index, qkv: qkv, context: context)
        backend.attention(q: qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, out: attention, shape: inputs.shape)
        residual(weight: o.outWeight, bias: o.outBias, x: attention, k: heads * hs, outputNorm: o.attentionOutputNorm,
                 saved: t?.attentionBranch)
        if let t { backend.copy(hidden, to: t.residual1, count: rows * c) }

        // MLP: h += down(act(gate(x)) · up(x)), x = RMSNorm(h).
        norm(hidden, weight: parameters.floats(o.mlpNorm, c), out: normed2, rows: rows, channels: c, backend: backend)
        context.linear(block: index, weightOffset: o.gateUpWeight, x: normed2,
                       weight: parameters.floats(o.gateUpWeight, 2 * f * c), bias: o.gateUpBias.map { parameters.floats($0, 2 * f) },
                       out: gateUp, m: rows, n: 2 * f, k: c, activation: .none, accumulate: false)
        backend.gatedActivation(config.gateFunction, gateUp: gateUp, out: activated, rows: rows, width: f)
        residual(weight: o.downWeight, bias: o.downBias, x: activated, k: f, outputNorm: o.mlpOutputNorm, saved: t?.mlpBranch)
    }

    /// Block `index`'s attention inputs for qkv [R, (NH + 2·NKV)·HS] (see `StageContext.attentionInputs`),
    /// with its window, the config's score scale and soft cap.
    func attentionInputs(_ index: Int, qkv: DeviceBuffer, context: StageContext)
        -> (k: DeviceBuffer, v: DeviceBuffer, mask: DeviceBuffer, shape: AttentionShape) {
        context.attentionInputs(block: index, qkv: qkv, heads: config.numAttentionHeads, kvHeads: config.kvHeads,
                                headSize: config.headSize, window: config.window(block: index), scale: config.attentionScale,
                                softcap: Float(config.attnLogitSoftcapping ?? 0))
    }

    /// The rotary cos/sin tables block `index` reads among the constants: [tables · positions, HS],
    /// or with a local base the global table or (for a block `layer_types` marks sliding) the local one.
    func rotaryTable(_ context: StageContext, block index: Int) -> DeviceBuffer {
        let size = config.maxPositionEmbeddings * config.headSize
        guard config.ropeLocalBaseFreq != nil else { return context.constants.floats(0, config.rotaryTables * size) }
        return context.constants.floats(config.isSliding(block: index) ? size : 0, size)
    }

    public func head(_ head: DeviceBuffer, embedding: DeviceBuffer, hidden: DeviceBuffer, logits: DeviceBuffer, rows: Int,
                     context: StageContext) {
        self.head(head, embedding: embedding, hidden: hidden, logits: logits, rows: rows, context: context, tape: nil)
    }

    /// The head, recording its input [R, C] and normed features [R, C] in `tape` when given.
    public func head(_ head: DeviceBuffer, embedding: DeviceBuffer, hidden: DeviceBuffer, logits: DeviceBuffer, rows: Int,
                     context: StageContext, tape: DeviceBuffer?) {
        let c = config.hiddenSize, v = config.vocabSize
        if let tape { context.backend.copy(hidden, to: tape.floats(0, rows * c), count: rows * c) }
        norm(hidden, weight: head.floats(offsets.head.norm, c), out: hidden, rows: rows, channels: c, backend: context.backend)
        if let tape { context.backend.copy(hidden, to: tape.floats(rows * c, rows * c), count: rows * c) }
        context.backend.linear(x: hidden, weight: tokenTable(head: head, embedding: embedding), bias: nil, out: logits,
                               m: rows, n: v, k: c, activation: .none, accumulate: false)
        if let cap = config.finalLogitSoftcapping { context.backend.softcap(logits, count: rows * v, cap: Float(cap)) }
    }

    /// The output embedding [V, C]: lm_head, or the token table it is tied to.
    func tokenTable(head: DeviceBuffer, embedding: DeviceBuffer) -> DeviceBuffer {
        let v = config.vocabSize, c = config.hiddenSize
        return offsets.head.untiedHead.map { head.floats($0, v * c) } ?? embedding.floats(0, v * c)
    }
}
