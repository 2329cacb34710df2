import ZOCore

/// Causal, key-masked attention for one (batch row b, head h) pair; see `Backend.attention`.
///
/// The head's keys are packed transposed (Kᵀ [HS, T8]) and its values padded (V [T8, HS8]),
/// T8 and HS8 rounded up to 8, so that both products run as 8-wide FMAs with independent
/// accumulators and no horizontal sums.
struct AttentionScratch {
    let tokens8: Int, headSize8: Int
    let keys: UnsafeMutablePointer<Float>    // [HS, T8]
    let values: UnsafeMutablePointer<Float>  // [T8, HS8]
    let scores: UnsafeMutablePointer<Float>  // [T8]
    let query: UnsafeMutablePointer<Float>   // [HS]

    /// Floats needed for `tokens` and `headSize`.
    static func count(tokens: Int, headSize: Int) -> Int {
        let t8 = (tokens + 7) & ~7, hs8 = (headSize + 7) & ~7
        return headSize * t8 + t8 * hs8 + t8 + headSize
    }

    init(_ base: UnsafeMutablePointer<Float>, tokens: Int, headSize: Int) {
        tokens8 = (tokens + 7) & ~7
        headSize8 = (headSize + 7) & ~7
        keys = base
        values = keys + headSize * tokens8
        scores = values + tokens8 * headSize8
        query = scores + tokens8
    }
}

func attentionHead(q queries: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                   keyMask: UnsafePointer<Int32>, out: UnsafeMutablePointer<Float>,
                   scratch: AttentionScratch, head: Int, shape: AttentionShape) {
    let headSize = shape.headSize, tokens = shape.keys
    let kvColumn = (head / (shape.heads / shape.kvHeads)) * headSize
    let outStride = shape.heads * headSize
    let t8 = scratch.tokens8, hs8 = scratch.headSize8
    let keys = scratch.keys, values = scratch.values, scores = scratch.scores, query = scratch.query

    // Pack Kᵀ and V of this head's kv group, zero-padded.
    keys.update(repeating: 0, count: headSize * t8)
    values.update(repeating: 0, count: t8 * hs8)
    for s in 0..<tokens {
        let row = k + s * shape.kvStride + kvColumn
        for d in 0..<headSize { keys[d * t8 + s] = row[d] }
        (values + s * hs8).update(from: v + s * shape.kvStride + kvColumn, count: headSize)
    }

    let firstPosition = shape.keys - shape.queries
    for i in 0..<shape.queries {
        let t = firstPosition + i  // this query's position among the keys
        let q = queries + i * shape.queryStride + head * headSize
        for d in 0..<headSize { query[d] = q[d] * shape.scale }
        let blocks = (t + 8) / 8  // key blocks covering 0...t

        // scores[s] = q · k_s, four blocks of 8 keys at a time.
        var block = 0
        while block + 4 <= blocks {
            var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
            let base = keys + block * 8
            for d in 0..<headSize {
                let qd = F8(repeating: query[d])
                let row = base + d * t8
                a0 += qd * load8(row); a1 += qd * load8(row + 8)
                a2 += qd * load8(row + 16); a3 += qd * load8(row + 24)
            }
            store8(a0, scores + block * 8); store8(a1, scores + block * 8 + 8)
            store8(a2, scores + block * 8 + 16); store8(a3, scores + block * 8 + 24)
            block += 4
        }
        while block < blocks {
            var a = F8()
            for d in 0..<headSize { a += F8(repeating: query[d]) * load8(keys + d * t8 + block * 8) }
            store8(a, scores + block * 8)
            block += 1
        }

        // Soft-cap, mask future, padded and out-of-window keys, then softmax numerators (masked ones exactly 0).
        var best = -Float.infinity
        let first = shape.firstVisibleKey(t), cap = shape.softcap
        for s in 0..<blocks * 8 {
            if s > t || s < first || keyMask[s] == 0 {
                scores[s] = -.infinity
            } else {
                if cap > 0 { scores[s] = softcapped(scores[s], cap) }
                best = max(best, scores[s])
            }
        }
        let o = out + i * outStride + head * headSize
        guard best > -.infinity else {
            o.update(repeating: 0, count: headSize)
            continue
        }
        let vbest = F8(repeating: best), negativeInfinity = F8(repeating: -.infinity)
        var total = F8()
        for block in 0..<blocks {
            let x = load8(scores + block * 8)
            let e = exp8(x - vbest).replacing(with: 0, where: x .== negativeInfinity)
            store8(e, scores + block * 8)
            total += e
        }
        let inverse = 1 / total.sum()

        // out = Σ_s p_s · v_s / Σ p, eight channels at a time, four keys per step.
        let n = t + 1
        for d0 in Swift.stride(from: 0, to: hs8, by: 8) {
            var a0 = F8(), a1 = F8(), a2 = F8(), a3 = F8()
            var s = 0
            while s + 4 <= n {
                let v = values + s * hs8 + d0
                a0 += F8(repeating: scores[s]) * load8(v)
                a1 += F8(repeating: scores[s + 1]) * load8(v + hs8)
                a2 += F8(repeating: scores[s + 2]) * load8(v + 2 * hs8)
                a3 += F8(repeating: scores[s + 3]) * load8(v + 3 * hs8)
                s += 4
            }
            while s < n {
                a0 += F8(repeating: scores[s]) * load8(values + s * hs8 + d0)
                s += 1
            }
            let result = (a0 + a1 + a2 + a3) * inverse
            for lane in 0..<min(8, headSize - d0) { o[d0 + lane] = result[lane] }
        }
    }
}
