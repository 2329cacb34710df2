import ZOCore

/// What an OPT block's forward records for its backward, per row (R rows each):
/// input [C], normed1 [C], qkv [3C], attention [C], residual1 [C], normed2 [C], mlp [F],
/// residual2 [C]. Pre-LN: normed1 = LN1(input), residual1 = input + attention output,
/// normed2 = LN2(residual1), mlp = relu(fc1(normed2)). Post-LN (350M): residual1 is the sum
/// before LN1, normed1 = LN1(residual1), mlp = relu(fc1(normed1)), residual2 the sum before LN2.
struct OPTTape {
    let input, normed1, qkv, attention, residual1, normed2, mlp, residual2: DeviceBuffer

    /// The regions' sizes for R rows, in order.
    static func counts(rows: Int, config: OPTConfig) -> [Int] {
        let c = rows * config.hiddenSize
        return [c, c, 3 * c, c, c, c, rows * config.ffnDim, c]
    }

    static func count(rows: Int, config: OPTConfig) -> Int { counts(rows: rows, config: config).reduce(0, +) }

    init(_ tape: DeviceBuffer, rows: Int, config: OPTConfig) {
        let r = tape.regions(Self.counts(rows: rows, config: config))
        (input, normed1, qkv, attention) = (r[0], r[1], r[2], r[3])
        (residual1, normed2, mlp, residual2) = (r[4], r[5], r[6], r[7])
    }
}

/// What the OPT head records: its input [R, C], the final norm's output [R, C] (kept when
/// project_out follows) and the features the logits multiply [R, D].
struct OPTHeadTape {
    let input, normed, features: DeviceBuffer

    /// The regions' sizes for R rows, in order.
    static func counts(rows: Int, config: OPTConfig) -> [Int] {
        [rows * config.hiddenSize, rows * config.hiddenSize, rows * config.embedDim]
    }

    static func count(rows: Int, config: OPTConfig) -> Int { counts(rows: rows, config: config).reduce(0, +) }

    init(_ tape: DeviceBuffer, rows: Int, config: OPTConfig) {
        let r = tape.regions(Self.counts(rows: rows, config: config))
        (input, normed, features) = (r[0], r[1], r[2])
    }
}

extension OPTModel: TrainableLM {
    public func blockTapeCount(rows: Int) -> Int { OPTTape.count(rows: rows, config: config) }

    public func headTapeCount(rows: Int) -> Int { OPTHeadTape.count(rows: rows, config: config) }

    public func blockBackward(_ index: Int, _ parameters: DeviceBuffer, gradients: DeviceBuffer, tape: DeviceBuffer,
                              gradHidden g: DeviceBuffer, context: StageContext, backend: any GradientBackend) {
        let rows = context.batch.rows, c = config.hiddenSize, f = config.ffnDim
        let o = offsets.block, t = OPTTape(tape, rows: rows, config: config)
        let s = Scratch(context.workspace, rows: rows, config: config)  // gradients of normed, qkv, attention, mlp
        func tensor(_ offset: Int?, _ count: Int) -> DeviceBuffer? { offset.map { parameters.floats($0, count) } }
        func grad(_ offset: Int?, _ count: Int) -> DeviceBuffer? { offset.map { gradients.floats($0, count) } }
        let preNorm = config.doLayerNormBefore, eps: Float = 1e-5
        /// g = dL/d(LN input) from g = dL/d(LN output) (post-LN: the norm sits on the residual path).
        func postNormBackward(_ input: DeviceBuffer, weight: Int?, bias: Int?) {
            backend.zero(s.normed, count: rows * c)
            backend.layerNormBackward(x: input, weight: tensor(weight, c), gradOut: g, gradX: s.normed, gradWeight: grad(weight, c),
                                      gradBias: grad(bias, c), rows: rows, channels: c, eps: eps)
            backend.copy(s.normed, to: g, count: rows * c)
        }

        // MLP: h2 = h1 + fc2(relu(fc1(x))), x = LN2(h1) (pre-LN) or h1 (post-LN, then h2 = LN2(·)).
        if !preNorm { postNormBackward(t.residual2, weight: o.norm2Weight, bias: o.norm2Bias) }
        let mlpInput = preNorm ? t.normed2 : t.normed1
        context.linearBackward(block: index, weightOffset: o.fc2Weight, backend: backend,
                               x: t.mlp, weight: parameters.floats(o.fc2Weight, c * f),
                               gradY: g, gradX: s.mlp, accumulateInput: false,
                               gradWeight: gradients.floats(o.fc2Weight, c * f), gradBias: grad(o.fc2Bias, c), m: rows, n: c, k: f)
        backend.reluBackward(gradient: s.mlp, output: t.mlp, count: rows * f)
        context.linearBackward(block: index, weightOffset: o.fc1Weight, backend: backend,
                               x: mlpInput, weight: parameters.floats(o.fc1Weight, f * c), gradY: s.mlp,
                               gradX: preNorm ? s.normed : g, accumulateInput: !preNorm,
                               gradWeight: gradients.floats(o.fc1Weight, f * c), gradBias: grad(o.fc1Bias, f), m: rows, n: f, k: c)
        if preNorm {
            backend.layerNormBackward(x: t.residual1, weight: tensor(o.norm2Weight, c), gradOut: s.normed, gradX: g,
                                      gradWeight: grad(o.norm2Weight, c), gradBias: grad(o.norm2Bias, c), rows: rows, channels: c, eps: eps)
        } else {
            postNormBackward(t.residual1, weight: o.norm1Weight, bias: o.norm1Bias)
        }

        // Attention: h1 = h0 + out_proj(attention(qkv(x))), x = LN1(h0) (pre-LN) or h0.
        context.linearBackward(block: index, weightOffset: o.outWeight, backend: backend,
                               x: t.attention, weight: parameters.floats(o.outWeight, c * c), gradY: g, gradX: s.attention,
                               accumulateInput: false, gradWeight: gradients.floats(o.outWeight, c * c), gradBias: grad(o.outBias, c),
                               m: rows, n: c, k: c)
        backend.zero(s.qkv, count: rows * 3 * c)
        let inputs = context.attentionInputs(block: index, qkv: t.qkv, heads: config.numAttentionHeads,
                                             kvHeads: config.numAttentionHeads, headSize: config.headSize)
        let gradInputs = context.attentionInputs(block: index, qkv: s.qkv, heads: config.numAttentionHeads,
                                                 kvHeads: config.numAttentionHeads, headSize: config.headSize)
        backend.attentionBackward(q: t.qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, gradOut: s.attention,
                                  gradQ: s.qkv, gradK: gradInputs.k, gradV: gradInputs.v, shape: inputs.shape)
        context.linearBackward(block: index, weightOffset: o.qkvWeight, backend: backend,
                               x: preNorm ? t.normed1 : t.input, weight: parameters.floats(o.qkvWeight, 3 * c * c),
                               gradY: s.qkv,
                               gradX: preNorm ? s.normed : g, accumulateInput: !preNorm,
                               gradWeight: gradients.floats(o.qkvWeight, 3 * c * c), gradBias: grad(o.qkvBias, 3 * c),
                               m: rows, n: 3 * c, k: c)
        if preNorm {
            backend.layerNormBackward(x: t.input, weight: tensor(o.norm1Weight, c), gradOut: s.normed, gradX: g,
                                      gradWeight: grad(o.norm1Weight, c), gradBias: grad(o.norm1Bias, c), rows: rows, channels: c, eps: eps)
        }
    }

    public func headBackward(_ head: DeviceBuffer, embedding: DeviceBuffer, gradHead: DeviceBuffer, gradTokenTable: DeviceBuffer?,
                             tape: DeviceBuffer, logits: DeviceBuffer, gradLogits: DeviceBuffer, gradHidden: DeviceBuffer, rows: Int,
                             context: StageContext, backend: any GradientBackend) {
        let c = config.hiddenSize, d = config.embedDim, v = config.vocabSize
        let o = offsets.head, t = OPTHeadTape(tape, rows: rows, config: config)
        let s = Scratch(context.workspace, rows: rows, config: config)
        let gradTable = o.untiedHead.map { gradHead.floats($0, v * d) } ?? gradTokenTable!
        // logits = features · Eᵀ; dFeatures [R, D] into the scratch's projected region.
        backend.linearBackward(x: t.features, weight: tokenTable(head: head, embedding: embedding), gradY: gradLogits,
                               gradX: s.projected, accumulateInput: false, gradWeight: gradTable, gradBias: nil, m: rows, n: v, k: d)
        var gradNormed = s.projected
        if let projectOut = o.projectOut {
            backend.linearBackward(x: t.normed, weight: head.floats(projectOut, d * c), gradY: s.projected, gradX: s.normed,
                                   accumulateInput: false, gradWeight: gradHead.floats(projectOut, d * c), gradBias: nil, m: rows, n: d, k: c)
            gradNormed = s.normed
        }
        if o.hasFinalNorm {
            backend.zero(gradHidden, count: rows * c)
            backend.layerNormBackward(x: t.input, weight: o.normWeight.map { head.floats($0, c) }, gradOut: gradNormed, gradX: gradHidden,
                                      gradWeight: o.normWeight.map { gradHead.floats($0, c) }, gradBias: o.normBias.map { gradHead.floats($0, c) },
                                      rows: rows, channels: c, eps: 1e-5)
        } else {
            backend.copy(gradNormed, to: gradHidden, count: rows * c)
        }
    }

    public func embedBackward(_ embedding: DeviceBuffer, gradients: DeviceBuffer, gradHidden: DeviceBuffer, context: StageContext,
                              backend: any GradientBackend) throws {
        let batch = context.batch, rows = batch.rows, c = config.hiddenSize, d = config.embedDim
        let o = offsets.embedding
        let positions = (config.maxPositionEmbeddings + OPTConfig.positionOffset) * c
        backend.scatterAddRows(gradHidden, width: c, indices: batch.positions, count: rows, table: gradients.floats(o.positions, positions),
                               skipping: nil)
        // As nn.Embedding(padding_idx: pad_token_id): the padding row gets nothing from lookups.
        let padding = config.padTokenId.map(Int32.init)
        let gradTokens = gradients.floats(o.tokens, config.vocabSize * d)
        guard let projectIn = o.projectIn else {
            backend.scatterAddRows(gradHidden, width: c, indices: batch.ids, count: rows, table: gradTokens, skipping: padding)
            return
        }
        // hidden = project_in(tokens[ids]): the gathered rows [R, D] and their gradient.
        let gathered = try backend.allocate(rows * d * 4, label: "gathered token rows [R, D]")
        defer { backend.free(gathered) }
        let gradGathered = try backend.allocate(rows * d * 4, label: "gathered token rows' gradient [R, D]")
        defer { backend.free(gradGathered) }
        backend.gatherRows(table: embedding.floats(o.tokens, config.vocabSize * d), width: d, indices: batch.ids, count: rows,
                           out: gathered, accumulate: false)
        backend.linearBackward(x: gathered, weight: embedding.floats(projectIn, c * d), gradY: gradHidden, gradX: gradGathered,
                               accumulateInput: false, gradWeight: gradients.floats(projectIn, c * d), gradBias: nil, m: rows, n: c, k: d)
        backend.scatterAddRows(gradGathered, width: d, indices: batch.ids, count: rows, table: gradTokens, skipping: padding)
    }
}
