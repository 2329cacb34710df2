/// Causal, key-masked attention for one (batch row b, head h) pair.
///
/// qkv: [T, 3C] for this batch row (q at column h·HS, k at C + h·HS, v at 2C + h·HS);
/// keyMask: Int32 [T]; out: [T, C] for this batch row, written at column h·HS;
/// scores: scratch of T floats. Query t attends to keys s ≤ t with keyMask[s] ≠ 0; a query
/// with no such key gets zeros.
func attentionHead(qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Int32>, out: UnsafeMutablePointer<Float>,
                   scores: UnsafeMutablePointer<Float>, tokens: Int, channels: Int, head: Int, headSize: Int,
                   scale: Float) {
    let stride = 3 * channels
    let qBase = qkv + head * headSize
    let kBase = qkv + channels + head * headSize
    let vBase = qkv + 2 * channels + head * headSize
    for t in 0..<tokens {
        let q = qBase + t * stride
        let o = out + t * channels + head * headSize
        var best = -Float.infinity
        for s in 0...t {
            if keyMask[s] != 0 {
                let score = dot(q, kBase + s * stride, headSize) * scale
                scores[s] = score
                best = max(best, score)
            } else {
                scores[s] = -.infinity
            }
        }
        o.update(repeating: 0, count: headSize)
        guard best > -.infinity else { continue }
        // Softmax numerators, vectorized over the key positions.
        let n = t + 1
        let vbest = F8(repeating: best)
        var total = F8()
        var s = 0
        while s + 8 <= n {
            let e = exp8(load8(scores + s) - vbest)
            store8(e, scores + s)
            total += e
            s += 8
        }
        var sum = total.sum()
        while s < n {
            let e = scores[s] == -.infinity ? 0 : exp1(scores[s] - best)
            scores[s] = e
            sum += e
            s += 1
        }
        let inverse = 1 / sum
        for s in 0..<n where keyMask[s] != 0 {
            axpy(scores[s] * inverse, vBase + s * stride, o, headSize)
        }
    }
}
