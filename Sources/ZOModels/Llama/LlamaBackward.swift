import ZOCore

/// What a Llama block's forward records for its backward, per row (R rows each): input [C],
/// normed1 [C], qkv [(NH + 2·NKV)·HS] after the rotary embedding, attention [NH·HS],
/// residual1 [C] (input + attention output), normed2 [C], gateUp [2F], activated [F]; with a
/// q/k norm, the heads it normed ([R·NH, HS] of q then [R·NKV, HS] of k).
struct LlamaTape {
    let input, normed1, qkv, attention, residual1, normed2, gateUp, activated, queryKeyInput: DeviceBuffer

    /// The regions' sizes for R rows, in order.
    static func counts(rows: Int, config: LlamaConfig) -> [Int] {
        let c = rows * config.hiddenSize, f = rows * config.intermediateSize, hs = config.headSize
        let queryKey = config.variant.queryKeyNorm ? rows * (config.numAttentionHeads + config.kvHeads) * hs : 0
        return [c, c, rows * (config.numAttentionHeads + 2 * config.kvHeads) * hs, rows * config.numAttentionHeads * hs, c, c, 2 * f, f,
                queryKey]
    }

    static func count(rows: Int, config: LlamaConfig) -> Int { counts(rows: rows, config: config).reduce(0, +) }

    init(_ tape: DeviceBuffer, rows: Int, config: LlamaConfig) {
        let r = tape.regions(Self.counts(rows: rows, config: config))
        (input, normed1, qkv, attention) = (r[0], r[1], r[2], r[3])
        (residual1, normed2, gateUp, activated, queryKeyInput) = (r[4], r[5], r[6], r[7], r[8])
    }
}

extension LlamaModel: TrainableLM {
    public func blockTapeCount(rows: Int) -> Int { LlamaTape.count(rows: rows, config: config) }

    /// The head records its input [R, C] and the normed features [R, C].
    public func headTapeCount(rows: Int) -> Int { rows * config.headTapePerRow }

    public func blockBackward(_ index: Int, _ parameters: DeviceBuffer, gradients: DeviceBuffer, tape: DeviceBuffer,
                              gradHidden g: DeviceBuffer, context: StageContext, backend: any GradientBackend) {
        let rows = context.batch.rows
        let c = config.hiddenSize, hs = config.headSize, f = config.intermediateSize
        let heads = config.numAttentionHeads, kvHeads = config.kvHeads
        let qkvWidth = (heads + 2 * kvHeads) * hs
        let o = offsets.block, t = LlamaTape(tape, rows: rows, config: config)
        let s = Scratch(context.workspace, rows: rows, config: config)  // the same regions hold the gradients
        let eps = Float(config.rmsNormEps)

        // MLP: h2 = h1 + down(swiglu(gateUp(RMSNorm(h1)))).
        backend.linearBackward(x: t.activated, weight: parameters.floats(o.downWeight, c * f), gradY: g, gradX: s.activated,
                               accumulateInput: false, gradWeight: gradients.floats(o.downWeight, c * f),
                               gradBias: o.downBias.map { gradients.floats($0, c) }, m: rows, n: c, k: f)
        backend.swigluBackward(gateUp: t.gateUp, gradOut: s.activated, gradGateUp: s.gateUp, rows: rows, width: f)
        backend.linearBackward(x: t.normed2, weight: parameters.floats(o.gateUpWeight, 2 * f * c), gradY: s.gateUp, gradX: s.normed,
                               accumulateInput: false, gradWeight: gradients.floats(o.gateUpWeight, 2 * f * c),
                               gradBias: o.gateUpBias.map { gradients.floats($0, 2 * f) }, m: rows, n: 2 * f, k: c)
        backend.rmsNormBackward(x: t.residual1, weight: parameters.floats(o.postNorm, c), gradOut: s.normed, gradX: g,
                                gradWeight: gradients.floats(o.postNorm, c), rows: rows, channels: c, eps: eps)

        // Attention: h1 = h0 + o_proj(attention(rotary(qkv(RMSNorm(h0))))).
        backend.linearBackward(x: t.attention, weight: parameters.floats(o.outWeight, c * heads * hs), gradY: g, gradX: s.attention,
                               accumulateInput: false, gradWeight: gradients.floats(o.outWeight, c * heads * hs),
                               gradBias: o.outBias.map { gradients.floats($0, c) }, m: rows, n: c, k: heads * hs)
        backend.zero(s.qkv, count: rows * qkvWidth)
        let window = config.window(block: index)
        let inputs = context.attentionInputs(block: index, qkv: t.qkv, heads: heads, kvHeads: kvHeads, headSize: hs, window: window)
        let gradInputs = context.attentionInputs(block: index, qkv: s.qkv, heads: heads, kvHeads: kvHeads, headSize: hs, window: window)
        backend.attentionBackward(q: t.qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, gradOut: s.attention,
                                  gradQ: s.qkv, gradK: gradInputs.k, gradV: gradInputs.v, shape: inputs.shape)
        backend.rotaryBackward(x: s.qkv, positions: context.batch.positions, table: rotaryTable(context),
                               rows: rows, heads: heads + kvHeads, headSize: hs, rowStride: qkvWidth)
        if let norms = o.queryKeyNorm {
            normalizeQueryKeyHeadsBackward(s.qkv, norms: parameters.floats(norms, 2 * hs), gradNorms: gradients.floats(norms, 2 * hs),
                                           saved: t.queryKeyInput, rows: rows, scratch: (s.attention, s.heads), backend: backend)
        }
        backend.linearBackward(x: t.normed1, weight: parameters.floats(o.qkvWeight, qkvWidth * c), gradY: s.qkv, gradX: s.normed,
                               accumulateInput: false, gradWeight: gradients.floats(o.qkvWeight, qkvWidth * c),
                               gradBias: o.qkvBias.map { gradients.floats($0, qkvWidth) }, m: rows, n: qkvWidth, k: c)
        backend.rmsNormBackward(x: t.input, weight: parameters.floats(o.inputNorm, c), gradOut: s.normed, gradX: g,
                                gradWeight: gradients.floats(o.inputNorm, c), rows: rows, channels: c, eps: eps)
    }

    public func headBackward(_ head: DeviceBuffer, embedding: DeviceBuffer, gradHead: DeviceBuffer, gradTokenTable: DeviceBuffer?,
                             tape: DeviceBuffer, gradLogits: DeviceBuffer, gradHidden: DeviceBuffer, rows: Int, context: StageContext,
                             backend: any GradientBackend) {
        let c = config.hiddenSize, v = config.vocabSize
        let input = tape.floats(0, rows * c), normed = tape.floats(rows * c, rows * c)
        let gradNormed = Scratch(context.workspace, rows: rows, config: config).normed
        let gradTable = offsets.head.untiedHead.map { gradHead.floats($0, v * c) } ?? gradTokenTable!
        backend.linearBackward(x: normed, weight: tokenTable(head: head, embedding: embedding), gradY: gradLogits, gradX: gradNormed,
                               accumulateInput: false, gradWeight: gradTable, gradBias: nil, m: rows, n: v, k: c)
        backend.zero(gradHidden, count: rows * c)
        backend.rmsNormBackward(x: input, weight: head.floats(offsets.head.norm, c), gradOut: gradNormed, gradX: gradHidden,
                                gradWeight: gradHead.floats(offsets.head.norm, c), rows: rows, channels: c, eps: Float(config.rmsNormEps))
    }

    public func embedBackward(_ embedding: DeviceBuffer, gradients: DeviceBuffer, gradHidden: DeviceBuffer, context: StageContext,
                              backend: any GradientBackend) throws {
        let batch = context.batch, c = config.hiddenSize
        // As nn.Embedding(padding_idx: pad_token_id): the padding row gets nothing from lookups.
        backend.scatterAddRows(gradHidden, width: c, indices: batch.ids, count: batch.rows, table: gradients.floats(0, config.vocabSize * c),
                               skipping: config.padTokenId.map(Int32.init))
    }
}
