import ZOCore

/// Row kernels of the backward pass (see `GradientBackend`); forward quantities are
/// recomputed from the saved inputs in the forward kernels' order of operations.

/// Layer norm backward for one row: gradX += rstd·(g·w − mean(g·w) − x̂·mean(g·w·x̂)),
/// gradWeight += g·x̂, gradBias += g. x, g, gradX: [C].
@inline(__always)
func layerNormBackwardRow(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>?, _ g: UnsafePointer<Float>,
                          _ gradX: UnsafeMutablePointer<Float>, _ gradWeight: UnsafeMutablePointer<Float>?,
                          _ gradBias: UnsafeMutablePointer<Float>?, _ channels: Int, _ eps: Float) {
    var sum: Float = 0
    for i in 0..<channels { sum += x[i] }
    let mean = sum / Float(channels)
    var sumSq: Float = 0
    for i in 0..<channels { let d = x[i] - mean; sumSq += d * d }
    let rstd = 1 / (sumSq / Float(channels) + eps).squareRoot()
    var meanG: Float = 0, meanGX: Float = 0
    for i in 0..<channels {
        let normalized = (x[i] - mean) * rstd
        let gw = g[i] * (weight?[i] ?? 1)
        meanG += gw
        meanGX += gw * normalized
        gradWeight?[i] += g[i] * normalized
        gradBias?[i] += g[i]
    }
    meanG /= Float(channels)
    meanGX /= Float(channels)
    for i in 0..<channels {
        let normalized = (x[i] - mean) * rstd
        gradX[i] += rstd * (g[i] * (weight?[i] ?? 1) - meanG - normalized * meanGX)
    }
}

/// RMSNorm backward for one row: with r = 1/sqrt(mean(x²) + eps), x̂ = x·r and w the weight
/// plus its offset, gradX += r·(g·w − x̂·mean(g·w·x̂)), gradWeight += g·x̂.
@inline(__always)
func rmsNormBackwardRow(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ offset: Float, _ g: UnsafePointer<Float>,
                        _ gradX: UnsafeMutablePointer<Float>, _ gradWeight: UnsafeMutablePointer<Float>, _ channels: Int, _ eps: Float) {
    var sum: Float = 0
    for i in 0..<channels { sum += x[i] * x[i] }
    let scale = 1 / (sum / Float(channels) + eps).squareRoot()
    var meanGX: Float = 0
    for i in 0..<channels {
        let normalized = x[i] * scale
        meanGX += g[i] * (offset + weight[i]) * normalized
        gradWeight[i] += g[i] * normalized
    }
    meanGX /= Float(channels)
    for i in 0..<channels {
        gradX[i] += scale * (g[i] * (offset + weight[i]) - x[i] * scale * meanGX)
    }
}

/// The transpose of `rotateHalf`: (a, b) -> (a·cos + b·sin, b·cos − a·sin).
@inline(__always)
func rotateHalfBack(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, half: Int) {
    for i in 0..<half {
        let a = x[i], b = x[i + half]
        x[i] = a * cos[i] + b * sin[i]
        x[i + half] = b * cos[i] - a * sin[i]
    }
}

/// SwiGLU backward for one row: with s = σ(gate), out = gate·s·up,
/// d gate = g·up·s·(1 + gate·(1 − s)), d up = g·gate·s.
func swigluBackwardRow(_ gateUp: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ gradGateUp: UnsafeMutablePointer<Float>,
                       _ width: Int) {
    for j in 0..<width {
        let gate = gateUp[j], up = gateUp[width + j]
        let sigmoid = 1 / (1 + exp1(-gate))
        gradGateUp[j] = g[j] * up * sigmoid * (1 + gate * (1 - sigmoid))
        gradGateUp[width + j] = g[j] * gate * sigmoid
    }
}

/// Cross-entropy backward for one row: weight·(softmax(logits) − onehot(target)).
@inline(__always)
func crossEntropyBackwardRow(_ logits: UnsafePointer<Float>, _ vocab: Int, _ target: Int, _ weight: Float,
                             _ out: UnsafeMutablePointer<Float>) {
    guard target >= 0, weight != 0 else {
        out.update(repeating: 0, count: vocab)
        return
    }
    let best = maxElement(logits, vocab)
    var sum: Float = 0
    for i in 0..<vocab {
        let e = exp1(logits[i] - best)
        out[i] = e
        sum += e
    }
    let scale = weight / sum
    for i in 0..<vocab { out[i] *= scale }
    out[target] -= weight
}

/// Attention backward for one (b, head) pair, accumulating into dq, dk, dv (see
/// `GradientBackend.attentionBackward`); `probabilities`, `gradScores` and `capSlopes` hold T
/// floats (the last the soft cap's derivative 1 − tanh² per key, when the shape has a cap).
func attentionBackwardHead(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, keyMask: UnsafePointer<Int32>,
                           gradOut: UnsafePointer<Float>, gradQ: UnsafeMutablePointer<Float>, gradK: UnsafeMutablePointer<Float>,
                           gradV: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>,
                           gradScores: UnsafeMutablePointer<Float>, capSlopes: UnsafeMutablePointer<Float>, head: Int,
                           shape: AttentionShape) {
    let hs = shape.headSize
    let qColumn = head * hs, kvColumn = (head / (shape.heads / shape.kvHeads)) * hs
    let outStride = shape.heads * hs
    for t in 0..<shape.queries {
        let query = q + t * shape.queryStride + qColumn
        // Softmax over visible keys first ≤ s ≤ t with keyMask[s] = 1 (as the forward).
        var best = -Float.infinity
        let first = shape.firstVisibleKey(t), cap = shape.softcap
        for s in first...t where keyMask[s] != 0 {
            probabilities[s] = dot(query, k + s * shape.kvStride + kvColumn, hs) * shape.scale
            if cap > 0 {
                probabilities[s] = softcapped(probabilities[s], cap)
                let slope = probabilities[s] / cap
                capSlopes[s] = 1 - slope * slope
            }
            best = max(best, probabilities[s])
        }
        guard best > -.infinity else { continue }  // no visible key: output 0, no gradient
        var total: Float = 0
        for s in 0...t {
            probabilities[s] = keyMask[s] != 0 && s >= first ? exp1(probabilities[s] - best) : 0
            total += probabilities[s]
        }
        let g = gradOut + t * outStride + qColumn
        // dP_s = g · v_s; D = Σ_s p_s·dP_s; dS_s = p_s·(dP_s − D).
        var weighted: Float = 0
        for s in 0...t {
            probabilities[s] /= total
            gradScores[s] = probabilities[s] == 0 ? 0 : dot(g, v + s * shape.kvStride + kvColumn, hs)
            weighted += probabilities[s] * gradScores[s]
        }
        let dq = gradQ + t * shape.queryStride + qColumn
        for s in 0...t where probabilities[s] != 0 {
            var dScore = probabilities[s] * (gradScores[s] - weighted)
            if cap > 0 { dScore *= capSlopes[s] }
            dScore *= shape.scale
            axpy(dScore, k + s * shape.kvStride + kvColumn, dq, hs)
            axpy(dScore, query, gradK + s * shape.kvStride + kvColumn, hs)
            axpy(probabilities[s], g, gradV + s * shape.kvStride + kvColumn, hs)
        }
    }
}
