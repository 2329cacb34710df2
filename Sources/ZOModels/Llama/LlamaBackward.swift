import ZOCore

/// What a Llama block's forward records for its backward, per row (R rows each): input [C],
/// normed1 [C], qkv [(NH + 2·NKV)·HS] after the rotary embedding, attention [NH·HS],
/// residual1 [C] (input + attention output), normed2 [C], gateUp [2F], activated [F].
struct LlamaTape {
    let input, normed1, qkv, attention, residual1, normed2, gateUp, activated: DeviceBuffer

    static func count(rows: Int, config: LlamaConfig) -> Int {
        let qkv = (config.numAttentionHeads + 2 * config.kvHeads) * config.headSize
        return rows * (4 * config.hiddenSize + qkv + config.numAttentionHeads * config.headSize + 3 * config.intermediateSize)
    }

    init(_ tape: DeviceBuffer, rows: Int, config: LlamaConfig) {
        let c = rows * config.hiddenSize, f = rows * config.intermediateSize
        var offset = 0
        func take(_ count: Int) -> DeviceBuffer {
            defer { offset += count }
            return tape.floats(offset, count)
        }
        (input, normed1) = (take(c), take(c))
        qkv = take(rows * (config.numAttentionHeads + 2 * config.kvHeads) * config.headSize)
        attention = take(rows * config.numAttentionHeads * config.headSize)
        (residual1, normed2, gateUp, activated) = (take(c), take(c), take(2 * f), take(f))
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
        let inputs = context.attentionInputs(block: index, qkv: t.qkv, heads: heads, kvHeads: kvHeads, headSize: hs)
        let gradInputs = context.attentionInputs(block: index, qkv: s.qkv, heads: heads, kvHeads: kvHeads, headSize: hs)
        backend.attentionBackward(q: t.qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, gradOut: s.attention,
                                  gradQ: s.qkv, gradK: gradInputs.k, gradV: gradInputs.v, shape: inputs.shape)
        backend.rotaryBackward(x: s.qkv, positions: context.batch.positions, table: rotaryTable(context),
                               rows: rows, heads: heads + kvHeads, headSize: hs, rowStride: qkvWidth)
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
