import ZOCore

/// What a Llama block's forward records for its backward, per row (R rows each): input [C],
/// normed1 [C], qkv [(NH + 2·NKV)·HS] after the rotary embedding, attention [NH·HS],
/// residual1 [C] (input + attention output), normed2 [C], gateUp [2F], activated [F]; with a
/// q/k norm, the heads it normed ([R·NH, HS] of q then [R·NKV, HS] of k); with sandwich norms,
/// the attention's and the MLP's outputs before their norms [C] each.
struct LlamaTape {
    let input, normed1, qkv, attention, residual1, normed2, gateUp, activated, queryKeyInput: DeviceBuffer
    let attentionBranch, mlpBranch: DeviceBuffer

    /// The regions' sizes for R rows, in order.
    static func counts(rows: Int, config: LlamaConfig) -> [Int] {
        let c = rows * config.hiddenSize, f = rows * config.intermediateSize, hs = config.headSize
        let queryKey = config.variant.queryKeyNorm ? rows * (config.numAttentionHeads + config.kvHeads) * hs : 0
        let branch = config.variant.sandwichNorms ? c : 0
        return [c, c, rows * (config.numAttentionHeads + 2 * config.kvHeads) * hs, rows * config.numAttentionHeads * hs, c, c, 2 * f, f,
                queryKey, branch, branch]
    }

    static func count(rows: Int, config: LlamaConfig) -> Int { counts(rows: rows, config: config).reduce(0, +) }

    init(_ tape: DeviceBuffer, rows: Int, config: LlamaConfig) {
        let r = tape.regions(Self.counts(rows: rows, config: config))
        (input, normed1, qkv, attention) = (r[0], r[1], r[2], r[3])
        (residual1, normed2, gateUp, activated, queryKeyInput) = (r[4], r[5], r[6], r[7], r[8])
        (attentionBranch, mlpBranch) = (r[9], r[10])
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
        let eps = Float(config.rmsNormEps), weightOffset = config.variant.normWeightOffset

        /// dL/d(branch output before its norm) given dL/dh in g (h += RMSNorm(branch)), in s.branch;
        /// g itself without sandwich norms (h += branch).
        func branchGradient(outputNorm: Int?, saved: DeviceBuffer) -> DeviceBuffer {
            guard let outputNorm else { return g }
            backend.zero(s.branch, count: rows * c)
            backend.rmsNormBackward(x: saved, weight: parameters.floats(outputNorm, c), weightOffset: weightOffset, gradOut: g,
                                    gradX: s.branch, gradWeight: gradients.floats(outputNorm, c), rows: rows, channels: c, eps: eps)
            return s.branch
        }

        // MLP: h2 = h1 + down(act(gate) · up), gate|up = gateUp(RMSNorm(h1)).
        context.linearBackward(block: index, weightOffset: o.downWeight, backend: backend,
                               x: t.activated, weight: parameters.floats(o.downWeight, c * f),
                               gradY: branchGradient(outputNorm: o.mlpOutputNorm, saved: t.mlpBranch), gradX: s.activated,
                               accumulateInput: false, gradWeight: gradients.floats(o.downWeight, c * f),
                               gradBias: o.downBias.map { gradients.floats($0, c) }, m: rows, n: c, k: f)
        backend.gatedActivationBackward(config.gateFunction, gateUp: t.gateUp, gradOut: s.activated, gradGateUp: s.gateUp, rows: rows,
                                        width: f)
        context.linearBackward(block: index, weightOffset: o.gateUpWeight, backend: backend,
                               x: t.normed2, weight: parameters.floats(o.gateUpWeight, 2 * f * c),
                               gradY: s.gateUp, gradX: s.normed,
                               accumulateInput: false, gradWeight: gradients.floats(o.gateUpWeight, 2 * f * c),
                               gradBias: o.gateUpBias.map { gradients.floats($0, 2 * f) }, m: rows, n: 2 * f, k: c)
        backend.rmsNormBackward(x: t.residual1, weight: parameters.floats(o.mlpNorm, c), weightOffset: weightOffset, gradOut: s.normed,
                                gradX: g, gradWeight: gradients.floats(o.mlpNorm, c), rows: rows, channels: c, eps: eps)

        // Attention: h1 = h0 + o_proj(attention(rotary(qkv(RMSNorm(h0))))).
        context.linearBackward(block: index, weightOffset: o.outWeight, backend: backend,
                               x: t.attention, weight: parameters.floats(o.outWeight, c * heads * hs),
                               gradY: branchGradient(outputNorm: o.attentionOutputNorm, saved: t.attentionBranch), gradX: s.attention,
                               accumulateInput: false, gradWeight: gradients.floats(o.outWeight, c * heads * hs),
                               gradBias: o.outBias.map { gradients.floats($0, c) }, m: rows, n: c, k: heads * hs)
        backend.zero(s.qkv, count: rows * qkvWidth)
        let inputs = attentionInputs(index, qkv: t.qkv, context: context)
        let gradInputs = attentionInputs(index, qkv: s.qkv, context: context)
        backend.attentionBackward(q: t.qkv, k: inputs.k, v: inputs.v, keyMask: inputs.mask, gradOut: s.attention,
                                  gradQ: s.qkv, gradK: gradInputs.k, gradV: gradInputs.v, shape: inputs.shape)
        backend.rotaryBackward(x: s.qkv, positions: context.batch.positions, table: rotaryTable(context, block: index),
                               rows: rows, heads: heads + kvHeads, headSize: hs, rowStride: qkvWidth)
        if let norms = o.queryKeyNorm {
            normalizeQueryKeyHeadsBackward(s.qkv, norms: parameters.floats(norms, 2 * hs), gradNorms: gradients.floats(norms, 2 * hs),
                                           saved: t.queryKeyInput, rows: rows, scratch: (s.attention, s.heads), backend: backend)
        }
        context.linearBackward(block: index, weightOffset: o.qkvWeight, backend: backend,
                               x: t.normed1, weight: parameters.floats(o.qkvWeight, qkvWidth * c),
                               gradY: s.qkv, gradX: s.normed,
                               accumulateInput: false, gradWeight: gradients.floats(o.qkvWeight, qkvWidth * c),
                               gradBias: o.qkvBias.map { gradients.floats($0, qkvWidth) }, m: rows, n: qkvWidth, k: c)
        backend.rmsNormBackward(x: t.input, weight: parameters.floats(o.attentionNorm, c), weightOffset: weightOffset, gradOut: s.normed,
                                gradX: g, gradWeight: gradients.floats(o.attentionNorm, c), rows: rows, channels: c, eps: eps)
    }

    public func headBackward(_ head: DeviceBuffer, embedding: DeviceBuffer, gradHead: DeviceBuffer, gradTokenTable: DeviceBuffer?,
                             tape: DeviceBuffer, logits: DeviceBuffer, gradLogits: DeviceBuffer, gradHidden: DeviceBuffer, rows: Int,
                             context: StageContext, backend: any GradientBackend) {
        let c = config.hiddenSize, v = config.vocabSize
        if let cap = config.finalLogitSoftcapping {
            backend.softcapBackward(gradient: gradLogits, output: logits, count: rows * v, cap: Float(cap))
        }
        let input = tape.floats(0, rows * c), normed = tape.floats(rows * c, rows * c)
        let gradNormed = Scratch(context.workspace, rows: rows, config: config).normed
        let gradTable = offsets.head.untiedHead.map { gradHead.floats($0, v * c) } ?? gradTokenTable!
        backend.linearBackward(x: normed, weight: tokenTable(head: head, embedding: embedding), gradY: gradLogits, gradX: gradNormed,
                               accumulateInput: false, gradWeight: gradTable, gradBias: nil, m: rows, n: v, k: c)
        backend.zero(gradHidden, count: rows * c)
        backend.rmsNormBackward(x: input, weight: head.floats(offsets.head.norm, c), weightOffset: config.variant.normWeightOffset,
                                gradOut: gradNormed, gradX: gradHidden, gradWeight: gradHead.floats(offsets.head.norm, c), rows: rows,
                                channels: c, eps: Float(config.rmsNormEps))
    }

    public func embedBackward(_ embedding: DeviceBuffer, gradients: DeviceBuffer, gradHidden: DeviceBuffer, context: StageContext,
                              backend: any GradientBackend) throws {
        let batch = context.batch, c = config.hiddenSize
        if let scale = embeddingScale { backend.scale(gradHidden, count: batch.rows * c, by: scale) }  // Gemma's √C
        // As nn.Embedding(padding_idx: pad_token_id): the padding row gets nothing from lookups.
        backend.scatterAddRows(gradHidden, width: c, indices: batch.ids, count: batch.rows, table: gradients.floats(0, config.vocabSize * c),
                               skipping: config.padTokenId.map(Int32.init))
    }
}
