import ZOCore
import ZOFormats

/// OPT (Zhang et al., 2022), the whole family: pre-LN blocks (125M, 1.3B and up) and the
/// post-LN 350M variant with project_in / project_out and no final layer norm. Learned
/// positions with an offset of 2, biases per `enable_bias`, ReLU MLP, LM head tied to the
/// token embedding. Mirrors Hugging Face's `OPTForCausalLM` in fp32.
public final class OPTModel: CausalLM, Sendable {
    public let config: OPTConfig
    public let embedding: ParameterGroup
    public let blocks: [ParameterGroup]
    public let head: ParameterGroup
    let offsets: OPTOffsets

    /// A model with the layout of `config` and zeroed parameters, its blocks in `blockStorage`.
    public init(config: OPTConfig, blockStorage: HostStorage = .memory) throws(ModelError) {
        try config.validate(path: "config")
        self.config = config
        let (layouts, offsets) = OPTOffsets.layouts(config)
        self.offsets = offsets
        (embedding, blocks, head) = try ParameterGroup.allocate(layouts, blockStorage: blockStorage)
    }

    public var vocabSize: Int { config.vocabSize }
    public var hiddenSize: Int { config.hiddenSize }
    public var maxSequenceLength: Int { config.maxPositionEmbeddings }
    public var padTokenId: Int { config.padTokenId ?? 0 }
    public var kvWidth: Int { config.hiddenSize }
    public var constants: [Float] { [] }

    public func configJSON() throws -> [UInt8] { try encodeConfig(config) }

    // MARK: Loading

    /// Loads `config.json` and the safetensors weights of a Hugging Face OPT folder.
    public static func load(directory: String, blockStorage: HostStorage = .memory) throws(ModelError) -> OPTModel {
        let configPath = directory + "/config.json"
        let config = try OPTConfig.load(path: configPath)
        let checkpoint: SafetensorsCheckpoint
        do { checkpoint = try SafetensorsCheckpoint(directory: directory) } catch { throw .weights(error) }
        // OPTForCausalLM saves "model.decoder.*"; a bare OPTModel saves "decoder.*".
        let bare = !checkpoint.contains("model.decoder.embed_tokens.weight") && checkpoint.contains("decoder.embed_tokens.weight")
        let name = { (spec: ParameterSpec) in bare && spec.name.hasPrefix("model.") ? String(spec.name.dropFirst(6)) : spec.name }
        try WeightPreflight.check(checkpoint, blocks: config.numHiddenLayers, configPath: configPath,
                                  layouts: { OPTOffsets.layouts(config).layouts }, name: name)
        let model = try OPTModel(config: config, blockStorage: blockStorage)
        do {
            for group in model.groups {
                for spec in group.layout.specs {
                    try checkpoint.readFloats(name(spec), expectedShape: spec.shape, into: group.values(spec).baseAddress!)
                }
            }
        } catch {
            throw .weights(error)
        }
        return model
    }

    // MARK: Stages

    public func positions(for batch: TokenBatch, past: Int) -> [Int32] {
        // Hugging Face: position = cumsum(mask) · mask − 1, then + 2 (padding gets row 1);
        // after `past` earlier (unpadded) tokens the count starts at `past`.
        var positions = [Int32](repeating: 0, count: batch.ids.count)
        for b in 0..<batch.batchSize {
            var seen = Int32(past)
            for t in 0..<batch.tokens {
                let i = b * batch.tokens + t
                seen += batch.mask[i]
                positions[i] = (batch.mask[i] != 0 ? seen - 1 : -1) + Int32(OPTConfig.positionOffset)
            }
        }
        return positions
    }

    public func workspaceCount(rows: Int) -> Int {
        rows * config.workspacePerRow
    }

    /// Regions of the workspace for R rows.
    struct Scratch {
        let normed, qkv, attention, mlp, projected: DeviceBuffer

        /// normed [R, C], qkv [R, 3C], attention [R, C], mlp [R, F], projected [R, D].
        static func counts(rows: Int, config: OPTConfig) -> [Int] {
            let c = rows * config.hiddenSize
            return [c, 3 * c, c, rows * config.ffnDim, rows * config.embedDim]
        }

        init(_ workspace: DeviceBuffer, rows: Int, config: OPTConfig) {
            let r = workspace.regions(Self.counts(rows: rows, config: config))
            (normed, qkv, attention, mlp, projected) = (r[0], r[1], r[2], r[3], r[4])
        }
    }

    public var blockLinears: [BlockLinear] { offsets.blockLinears(config) }

    public var tiedTokenTable: Int? {
        offsets.head.untiedHead == nil ? embedding.layout.specs.firstIndex { $0.offset == offsets.embedding.tokens } : nil
    }

    public func embed(_ embedding: DeviceBuffer, hidden: DeviceBuffer, context: StageContext) {
        let batch = context.batch, backend = context.backend, workspace = context.workspace
        let rows = batch.rows, c = config.hiddenSize, d = config.embedDim
        let o = offsets.embedding
        let tokenTable = embedding.floats(o.tokens, config.vocabSize * d)
        if let projectIn = o.projectIn {
            // hidden [R, C] = tokens [R, D] · project_inᵀ [C, D]
            let scratch = Scratch(workspace, rows: rows, config: config)
            backend.gatherRows(table: tokenTable, width: d, indices: batch.ids, count: rows, out: scratch.projected, accumulate: false,
                               perturbation: context.tokenTablePerturbation)
            backend.linear(x: scratch.projected, weight: embedding.floats(projectIn, c * d), bias: nil, out: hidden,
                           m: rows, n: c, k: d, activation: .none, accumulate: false)
        } else {
            backend.gatherRows(table: tokenTable, width: c, indices: batch.ids, count: rows, out: hidden, accumulate: false,
                               perturbation: context.tokenTablePerturbation)
        }
        let positionTable = embedding.floats(o.positions, (config.maxPositionEmbeddings + OPTConfig.positionOffset) * c)
        backend.gatherRows(table: positionTable, width: c, indices: batch.positions, count: rows, out: hidden, accumulate: true)
    }

    public func block(_ index: Int, _ parameters: any BlockWeights, hidden: DeviceBuffer, context: StageContext) {
        block(index, parameters, hidden: hidden, context: context, tape: nil)
    }

    /// The block, recording its intermediates in `tape` when given (see `OPTTape`); the same
    /// operations in the same order either way.
    public func block(_ index: Int, _ parameters: any BlockWeights, hidden: DeviceBuffer, context: StageContext, tape: DeviceBuffer?) {
        let batch = context.batch, backend = context.backend
        let rows = batch.rows, c = config.hiddenSize, f = config.ffnDim
        let o = offsets.block
        let s = Scratch(context.workspace, rows: rows, config: config)
        let t = tape.map { OPTTape($0, rows: rows, config: config) }
        func tensor(_ offset: Int?, _ count: Int) -> DeviceBuffer? { offset.map { parameters.floats($0, count) } }
        func save(_ buffer: DeviceBuffer?) {
            if let buffer { backend.copy(hidden, to: buffer, count: rows * c) }
        }
        let preNorm = config.doLayerNormBefore
        let eps: Float = 1e-5
        let normed1 = t?.normed1 ?? s.normed, normed2 = t?.normed2 ?? s.normed
        let qkv = t?.qkv ?? s.qkv, attention = t?.attention ?? s.attention, mlp = t?.mlp ?? s.mlp
        save(t?.input)

        // Attention: h += out_proj(attention(qkv(LN1(h) or h))); post-LN: h = LN1(h).
        if preNorm {
            backend.layerNorm(x: hidden, weight: tensor(o.norm1Weight, c), bias: tensor(o.norm1Bias, c), out: normed1,
                              rows: rows, channels: c, eps: eps)
        }
        let qkvInput = preNorm ? normed1 : hidden
        context.linear(block: index, weightOffset: o.qkvWeight, x: qkvInput,
                       weight: parameters.floats(o.qkvWeight, 3 * c * c), bias: tensor(o.qkvBias, 3 * c),
                       out: qkv, m: rows, n: 3 * c, k: c, activation: .none, accumulate: false)
        let inputs = context.attentionInputs(block: index, qkv: qkv, heads: config.numAttentionHeads,
                                             kvHeads: config.numAttentionHeads, headSize: config.headSize)
        backend.attention(q: qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, out: attention, shape: inputs.shape)
        context.linear(block: index, weightOffset: o.outWeight, x: attention,
                       weight: parameters.floats(o.outWeight, c * c), bias: tensor(o.outBias, c),
                       out: hidden, m: rows, n: c, k: c, activation: .none, accumulate: true)
        save(t?.residual1)
        if !preNorm {
            backend.layerNorm(x: hidden, weight: tensor(o.norm1Weight, c), bias: tensor(o.norm1Bias, c), out: hidden,
                              rows: rows, channels: c, eps: eps)
            save(t?.normed1)
        }

        // MLP: h += fc2(relu(fc1(LN2(h) or h))); post-LN: h = LN2(h).
        if preNorm {
            backend.layerNorm(x: hidden, weight: tensor(o.norm2Weight, c), bias: tensor(o.norm2Bias, c), out: normed2,
                              rows: rows, channels: c, eps: eps)
        }
        let mlpInput = preNorm ? normed2 : hidden
        context.linear(block: index, weightOffset: o.fc1Weight, x: mlpInput,
                       weight: parameters.floats(o.fc1Weight, f * c), bias: tensor(o.fc1Bias, f),
                       out: mlp, m: rows, n: f, k: c, activation: .relu, accumulate: false)
        context.linear(block: index, weightOffset: o.fc2Weight, x: mlp,
                       weight: parameters.floats(o.fc2Weight, c * f), bias: tensor(o.fc2Bias, c),
                       out: hidden, m: rows, n: c, k: f, activation: .none, accumulate: true)
        if !preNorm {
            save(t?.residual2)
            backend.layerNorm(x: hidden, weight: tensor(o.norm2Weight, c), bias: tensor(o.norm2Bias, c), out: hidden,
                              rows: rows, channels: c, eps: eps)
        }
    }

    public func head(_ head: DeviceBuffer, embedding: DeviceBuffer, hidden: DeviceBuffer, logits: DeviceBuffer, rows: Int,
                     context: StageContext) {
        self.head(head, embedding: embedding, hidden: hidden, logits: logits, rows: rows, context: context, tape: nil)
    }

    /// The head, recording its input and features in `tape` when given (see `OPTHeadTape`).
    public func head(_ head: DeviceBuffer, embedding: DeviceBuffer, hidden: DeviceBuffer, logits: DeviceBuffer, rows: Int,
                     context: StageContext, tape: DeviceBuffer?) {
        let backend = context.backend, workspace = context.workspace
        let c = config.hiddenSize, d = config.embedDim, v = config.vocabSize
        let o = offsets.head
        let t = tape.map { OPTHeadTape($0, rows: rows, config: config) }
        if let t { backend.copy(hidden, to: t.input, count: rows * c) }
        if o.hasFinalNorm {
            backend.layerNorm(x: hidden, weight: o.normWeight.map { head.floats($0, c) }, bias: o.normBias.map { head.floats($0, c) },
                              out: hidden, rows: rows, channels: c, eps: 1e-5)
        }
        var features = hidden
        if let projectOut = o.projectOut {
            if let t { backend.copy(hidden, to: t.normed, count: rows * c) }
            features = t?.features ?? Scratch(workspace, rows: rows, config: config).projected
            backend.linear(x: hidden, weight: head.floats(projectOut, d * c), bias: nil, out: features,
                           m: rows, n: d, k: c, activation: .none, accumulate: false)
        } else if let t {
            backend.copy(hidden, to: t.features, count: rows * d)
        }
        // logits [R, V] = features [R, D] · Eᵀ, E the (tied) token embedding [V, D].
        backend.linear(x: features, weight: tokenTable(head: head, embedding: embedding), bias: nil, out: logits,
                       m: rows, n: v, k: d, activation: .none, accumulate: false)
    }

    /// The output embedding [V, D]: lm_head, or the token table it is tied to.
    func tokenTable(head: DeviceBuffer, embedding: DeviceBuffer) -> DeviceBuffer {
        let v = config.vocabSize, d = config.embedDim
        return offsets.head.untiedHead.map { head.floats($0, v * d) } ?? embedding.floats(offsets.embedding.tokens, v * d)
    }
}
