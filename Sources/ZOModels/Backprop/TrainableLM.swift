import ZOCore

/// A model whose blocks, head and embedding can be trained first-order: forward stages that
/// record what their backward reads (a "tape", one device buffer per stage and pass), and
/// the backward stages, written against `GradientBackend` only.
///
/// Recording changes no result: a stage with a tape runs the same operations in the same
/// order as without one, and only copies intermediates aside. Gradients are accumulated
/// into buffers with the layout of the stage's parameter group.
public protocol TrainableLM: CausalLM {
    /// Floats a block's tape holds for R = B·T rows.
    func blockTapeCount(rows: Int) -> Int

    /// Floats the head's tape holds for R rows.
    func headTapeCount(rows: Int) -> Int

    /// `block`, recording in `tape` (`blockTapeCount(rows:)` floats) what `blockBackward` reads
    /// (nil: `block` itself).
    func block(_ index: Int, _ parameters: any BlockWeights, hidden: DeviceBuffer, context: StageContext, tape: DeviceBuffer?)

    /// Backpropagates through block `index`: `gradHidden` [B, T, C] holds dL/d(block output)
    /// and leaves holding dL/d(block input); `gradients` (the block's layout) += dL/dθ. Uses
    /// the context's workspace as scratch. No KV cache.
    func blockBackward(_ index: Int, _ parameters: DeviceBuffer, gradients: DeviceBuffer, tape: DeviceBuffer,
                       gradHidden: DeviceBuffer, context: StageContext, backend: any GradientBackend)

    /// `head`, recording in `tape` (`headTapeCount(rows:)` floats) what `headBackward` reads
    /// (nil: `head` itself).
    func head(_ head: DeviceBuffer, embedding: DeviceBuffer, hidden: DeviceBuffer, logits: DeviceBuffer, rows: Int,
              context: StageContext, tape: DeviceBuffer?)

    /// Backpropagates through the head from gradLogits [R, V] (which it may overwrite), given the
    /// logits [R, V] the head computed: `gradHead` (the head's layout) += dL/dθ, `gradTokenTable`
    /// [V, D] += the tied token table's gradient through the head (nil when the head is untied),
    /// and `gradHidden` [R, C] = dL/d(head input).
    func headBackward(_ head: DeviceBuffer, embedding: DeviceBuffer, gradHead: DeviceBuffer, gradTokenTable: DeviceBuffer?,
                      tape: DeviceBuffer, logits: DeviceBuffer, gradLogits: DeviceBuffer, gradHidden: DeviceBuffer, rows: Int,
                      context: StageContext, backend: any GradientBackend)

    /// Backpropagates gradHidden [B, T, C] (which it may overwrite) into the embedding stage:
    /// `gradients` (the embedding group's layout) += the gradients of the rows the batch gathered.
    func embedBackward(_ embedding: DeviceBuffer, gradients: DeviceBuffer, gradHidden: DeviceBuffer, context: StageContext,
                       backend: any GradientBackend) throws
}

extension Backend {
    /// Copies `count` floats from `source` to `destination` (both contiguous).
    func copy(_ source: DeviceBuffer, to destination: DeviceBuffer, count: Int) {
        copyRows(source: source, sourceStride: 0, destination: destination, destinationStride: 0, rows: 1, width: count)
    }
}

extension StageContext {
    /// `GradientBackend.linearBackward` for block `index`'s linear whose weights start at
    /// `weightOffset`, then the `linearBackwardHook`'s part (gradX accumulates it).
    func linearBackward(block index: Int, weightOffset: Int, backend: any GradientBackend, x: DeviceBuffer, weight: DeviceBuffer,
                        gradY: DeviceBuffer, gradX: DeviceBuffer?, accumulateInput: Bool, gradWeight: DeviceBuffer,
                        gradBias: DeviceBuffer?, m: Int, n: Int, k: Int) {
        backend.linearBackward(x: x, weight: weight, gradY: gradY, gradX: gradX, accumulateInput: accumulateInput, gradWeight: gradWeight,
                               gradBias: gradBias, m: m, n: n, k: k)
        linearBackwardHook?.backward(block: index, weightOffset: weightOffset, x: x, gradY: gradY, gradX: gradX, rows: m)
    }
}

extension GradientBackend {
    /// The backward of `linear(x, weight, bias, out: y, m, n, k)` given gradY [M, N]:
    /// gradWeight [N, K] += gradYᵀ·x, gradBias [N] += Σ rows of gradY, and gradX [M, K]
    /// = gradY·weight (or += with `accumulateInput`; nil skips it).
    func linearBackward(x: DeviceBuffer, weight: DeviceBuffer, gradY: DeviceBuffer, gradX: DeviceBuffer?, accumulateInput: Bool,
                        gradWeight: DeviceBuffer, gradBias: DeviceBuffer?, m: Int, n: Int, k: Int) {
        gemm(a: gradY, b: x, out: gradWeight, m: n, n: k, k: m, transposeA: true, transposeB: false, accumulate: true)
        if let gradBias { accumulateColumnSums(gradY, out: gradBias, rows: m, width: n) }
        if let gradX { gemm(a: gradY, b: weight, out: gradX, m: m, n: k, k: n, transposeA: false, transposeB: false, accumulate: accumulateInput) }
    }
}
