#if canImport(Glibc)
import Glibc
#endif
import ZOCore
import ZOFormats

/// The Llama family (Llama 2/3, SmolLM2, …): RMSNorm, rotary position embeddings, SwiGLU MLP,
/// grouped-query attention, tied or untied LM head. Mirrors Hugging Face's
/// `LlamaForCausalLM` in fp32; loads from safetensors + config.json or from GGUF.
public final class LlamaModel: CausalLM, @unchecked Sendable {
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

    public func configJSON() throws -> [UInt8] { try encodeConfig(config) }

    // MARK: Loading

    /// Loads `config.json` and the safetensors weights of a Hugging Face Llama folder.
    public static func load(directory: String, blockStorage: HostStorage = .memory) throws(ModelError) -> LlamaModel {
        let model = try LlamaModel(config: LlamaConfig.load(path: directory + "/config.json"), blockStorage: blockStorage)
        do {
            let checkpoint = try SafetensorsCheckpoint(directory: directory)
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

    /// Loads a GGUF file (`general.architecture` llama), dequantizing every tensor to fp32 and
    /// undoing llama.cpp's interleaving of the q/k projection rows so that the weights are
    /// exactly those Hugging Face's GGUF loader produces.
    public static func load(gguf file: GGUFFile, blockStorage: HostStorage = .memory) throws(ModelError) -> LlamaModel {
        let model = try LlamaModel(config: LlamaConfig.from(gguf: file), blockStorage: blockStorage)
        let config = model.config
        do {
            for group in model.groups {
                for spec in group.layout.specs {
                    let name = LlamaOffsets.ggufName(spec.name)
                    let target = group.values(spec).baseAddress!
                    try file.readFloats(name, expectedShape: spec.shape, into: target)
                    guard config.variant.permutesQueryKey else { continue }
                    if name.hasSuffix("attn_q.weight") || name.hasSuffix("attn_q.bias") {
                        unpermuteRows(target, shape: spec.shape, heads: config.numAttentionHeads)
                    } else if name.hasSuffix("attn_k.weight") || name.hasSuffix("attn_k.bias") {
                        unpermuteRows(target, shape: spec.shape, heads: config.kvHeads)
                    }
                }
            }
        } catch {
            throw .gguf(error)
        }
        return model
    }

    /// llama.cpp stores each head's rows as interleaved pairs (i, j) where Hugging Face has
    /// halves (j, i): row h·2·D + j·D + i of HF comes from row h·2·D + 2i + j of GGUF.
    private static func unpermuteRows(_ values: UnsafeMutablePointer<Float>, shape: [Int], heads: Int) {
        let rows = shape[0], width = shape.count > 1 ? shape[1] : 1
        let half = rows / heads / 2
        let copy = Array(UnsafeBufferPointer(start: values, count: rows * width))
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half {
                    let source = (h * 2 * half + 2 * i + j) * width
                    (values + (h * 2 * half + j * half + i) * width).update(from: copy.withUnsafeBufferPointer { $0.baseAddress! + source }, count: width)
                }
            }
        }
    }

    // MARK: Rotary table

    /// cos and sin of position · inverse frequency, [maxPositions, HS] (HS/2 cosines then HS/2
    /// sines per position), computed in fp32 the way Hugging Face's rotary embedding does. With
    /// LongRoPE, two such tables: the short factors' then the long factors' (scaled by the
    /// attention factor), and `positions(for:past:)` picks one per batch.
    public var constants: [Float] {
        let half = config.headSize / 2
        let inverseFrequencies = (0..<half).map { i -> Float in
            let exponent = Float(2 * i) / Float(config.headSize)
            return 1 / Float(pow(config.ropeTheta, Double(exponent)))
        }
        guard let scaling = config.ropeScaling, scaling.isLongRoPE,
              let short = scaling.shortFactor, let long = scaling.longFactor else {
            return Self.rotaryTable(Self.scale(inverseFrequencies, config.ropeScaling), positions: config.maxPositionEmbeddings)
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
    private static func scale(_ frequencies: [Float], _ scaling: LlamaConfig.RopeScaling?) -> [Float] {
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
        let normed, qkv, attention, gateUp, activated, heads: DeviceBuffer

        /// normed [R, C], qkv [R, (NH + 2·NKV)·HS], attention [R, NH·HS], gateUp [R, 2F], activated [R, F],
        /// and with a q/k norm, heads [R, NH·HS] (its backward's second buffer of heads).
        static func counts(rows: Int, config: LlamaConfig) -> [Int] {
            let hs = config.headSize, f = config.intermediateSize, attention = rows * config.numAttentionHeads * hs
            return [rows * config.hiddenSize, rows * (config.numAttentionHeads + 2 * config.kvHeads) * hs, attention, rows * 2 * f,
                    rows * f, config.variant.queryKeyNorm ? attention : 0]
        }

        init(_ workspace: DeviceBuffer, rows: Int, config: LlamaConfig) {
            let r = workspace.regions(Self.counts(rows: rows, config: config))
            (normed, qkv, attention, gateUp, activated, heads) = (r[0], r[1], r[2], r[3], r[4], r[5])
        }
    }

    public var tiedTokenTable: Int? { offsets.head.untiedHead == nil ? 0 : nil }

    public var blockLinears: [BlockLinear] { offsets.blockLinears(config) }

    public func embed(_ embedding: DeviceBuffer, hidden: DeviceBuffer, context: StageContext) {
        let batch = context.batch
        context.backend.gatherRows(table: embedding.floats(0, config.vocabSize * config.hiddenSize), width: config.hiddenSize,
                                   indices: batch.ids, count: batch.rows, out: hidden, accumulate: false,
                                   perturbation: context.tokenTablePerturbation)
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
        let eps = Float(config.rmsNormEps)
        let normed1 = t?.normed1 ?? s.normed, normed2 = t?.normed2 ?? s.normed, qkv = t?.qkv ?? s.qkv
        let attention = t?.attention ?? s.attention, gateUp = t?.gateUp ?? s.gateUp, activated = t?.activated ?? s.activated
        if let t { backend.copy(hidden, to: t.input, count: rows * c) }

        // Attention: h += o_proj(attention(rotary(qkv(RMSNorm(h))))).
        backend.rmsNorm(x: hidden, weight: parameters.floats(o.inputNorm, c), out: normed1, rows: rows, channels: c, eps: eps)
        context.linear(block: index, weightOffset: o.qkvWeight, x: normed1,
                       weight: parameters.floats(o.qkvWeight, qkvWidth * c), bias: o.qkvBias.map { parameters.floats($0, qkvWidth) },
                       out: qkv, m: rows, n: qkvWidth, k: c, activation: .none, accumulate: false)
        if let norms = o.queryKeyNorm {
            normalizeQueryKeyHeads(qkv, norms: parameters.floats(norms, 2 * hs), rows: rows, scratch: s.attention, saved: t?.queryKeyInput,
                                   backend: backend)
        }
        backend.rotary(x: qkv, positions: context.batch.positions, table: rotaryTable(context),
                       rows: rows, heads: heads + kvHeads, headSize: hs, rowStride: qkvWidth)
        let inputs = context.attentionInputs(block: index, qkv: qkv, heads: heads, kvHeads: kvHeads, headSize: hs,
                                             window: config.window(block: index))
        backend.attention(q: qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, out: attention, shape: inputs.shape)
        context.linear(block: index, weightOffset: o.outWeight, x: attention,
                       weight: parameters.floats(o.outWeight, c * heads * hs), bias: o.outBias.map { parameters.floats($0, c) },
                       out: hidden, m: rows, n: c, k: heads * hs, activation: .none, accumulate: true)
        if let t { backend.copy(hidden, to: t.residual1, count: rows * c) }

        // MLP: h += down(silu(gate(x)) · up(x)), x = RMSNorm(h).
        backend.rmsNorm(x: hidden, weight: parameters.floats(o.postNorm, c), out: normed2, rows: rows, channels: c, eps: eps)
        context.linear(block: index, weightOffset: o.gateUpWeight, x: normed2,
                       weight: parameters.floats(o.gateUpWeight, 2 * f * c), bias: o.gateUpBias.map { parameters.floats($0, 2 * f) },
                       out: gateUp, m: rows, n: 2 * f, k: c, activation: .none, accumulate: false)
        backend.swiglu(gateUp: gateUp, out: activated, rows: rows, width: f)
        context.linear(block: index, weightOffset: o.downWeight, x: activated,
                       weight: parameters.floats(o.downWeight, c * f), bias: o.downBias.map { parameters.floats($0, c) },
                       out: hidden, m: rows, n: c, k: f, activation: .none, accumulate: true)
    }

    /// The rotary cos/sin tables [tables · positions, HS] among the constants.
    func rotaryTable(_ context: StageContext) -> DeviceBuffer {
        context.constants.floats(0, config.rotaryTables * config.maxPositionEmbeddings * config.headSize)
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
        context.backend.rmsNorm(x: hidden, weight: head.floats(offsets.head.norm, c), out: hidden, rows: rows, channels: c,
                                eps: Float(config.rmsNormEps))
        if let tape { context.backend.copy(hidden, to: tape.floats(rows * c, rows * c), count: rows * c) }
        context.backend.linear(x: hidden, weight: tokenTable(head: head, embedding: embedding), bias: nil, out: logits,
                               m: rows, n: v, k: c, activation: .none, accumulate: false)
    }

    /// The output embedding [V, C]: lm_head, or the token table it is tied to.
    func tokenTable(head: DeviceBuffer, embedding: DeviceBuffer) -> DeviceBuffer {
        let v = config.vocabSize, c = config.hiddenSize
        return offsets.head.untiedHead.map { head.floats($0, v * c) } ?? embedding.floats(0, v * c)
    }
}
