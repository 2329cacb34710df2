import ZOCore

/// Qwen3's and Gemma 3's q/k norm: an RMSNorm over every head [HS] of q (weights q_norm) and of k (k_norm),
/// before the rotary embedding. The heads sit in the fused qkv rows [R, (NH + 2·NKV)·HS], so
/// each part is copied to contiguous rows [R·heads, HS], normed there by the plain RMSNorm
/// kernels, and copied back.
extension LlamaModel {
    /// The q and k parts of a qkv row: first column, heads, and which of the two norms.
    private var queryKeyParts: [(column: Int, heads: Int, norm: Int)] {
        [(0, config.numAttentionHeads, 0), (config.numAttentionHeads * config.headSize, config.kvHeads, 1)]
    }

    /// Norms q's and k's heads of qkv [R, (NH + 2·NKV)·HS] in place; `norms` holds q_norm [HS]
    /// then k_norm [HS]; `scratch` holds [R·NH, HS]. With `saved` ([R·(NH + NKV), HS]), the heads
    /// before the norm stay there for the backward.
    func normalizeQueryKeyHeads(_ qkv: DeviceBuffer, norms: DeviceBuffer, rows: Int, scratch: DeviceBuffer, saved: DeviceBuffer?,
                                backend: any Backend) {
        let hs = config.headSize, stride = (config.numAttentionHeads + 2 * config.kvHeads) * hs
        var savedOffset = 0
        for part in queryKeyParts {
            let width = part.heads * hs, count = rows * width
            let source = qkv.floats(part.column, (rows - 1) * stride + width)
            let input = saved.map { $0.floats(savedOffset, count) } ?? scratch.floats(0, count)
            savedOffset += count
            backend.copyRows(source: source, sourceStride: stride, destination: input, destinationStride: width, rows: rows, width: width)
            norm(input, weight: norms.floats(part.norm * hs, hs), out: scratch.floats(0, count), rows: rows * part.heads, channels: hs,
                 backend: backend)
            backend.copyRows(source: scratch.floats(0, count), sourceStride: width, destination: source, destinationStride: stride,
                             rows: rows, width: width)
        }
    }

    /// The backward of `normalizeQueryKeyHeads`: gradQKV's q and k parts hold dL/d(normed heads)
    /// and leave holding dL/d(heads before the norm); gradNorms (q_norm then k_norm) += their
    /// gradients. `saved` is what the forward kept; `scratch` is two buffers of [R·NH, HS].
    func normalizeQueryKeyHeadsBackward(_ gradQKV: DeviceBuffer, norms: DeviceBuffer, gradNorms: DeviceBuffer, saved: DeviceBuffer,
                                        rows: Int, scratch: (DeviceBuffer, DeviceBuffer), backend: any GradientBackend) {
        let hs = config.headSize, stride = (config.numAttentionHeads + 2 * config.kvHeads) * hs
        var savedOffset = 0
        for part in queryKeyParts {
            let width = part.heads * hs, count = rows * width
            let grad = gradQKV.floats(part.column, (rows - 1) * stride + width)
            let gradOut = scratch.0.floats(0, count), gradIn = scratch.1.floats(0, count)
            backend.copyRows(source: grad, sourceStride: stride, destination: gradOut, destinationStride: width, rows: rows, width: width)
            backend.zero(gradIn, count: count)
            backend.rmsNormBackward(x: saved.floats(savedOffset, count), weight: norms.floats(part.norm * hs, hs),
                                    weightOffset: config.variant.normWeightOffset, gradOut: gradOut,
                                    gradX: gradIn, gradWeight: gradNorms.floats(part.norm * hs, hs), rows: rows * part.heads,
                                    channels: hs, eps: Float(config.rmsNormEps))
            savedOffset += count
            backend.copyRows(source: gradIn, sourceStride: width, destination: grad, destinationStride: stride, rows: rows, width: width)
        }
    }
}
