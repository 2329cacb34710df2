/// Layer norm of one row: out = (x - mean) / sqrt(var + eps) · weight + bias, biased variance
/// computed in two passes (as PyTorch). `out` may alias `x`.
/// x, out: [C]; weight, bias: [C] or nil (1 and 0).
@inline(__always)
func layerNormRow(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>?, _ bias: UnsafePointer<Float>?,
                  _ out: UnsafeMutablePointer<Float>, _ channels: Int, _ eps: Float) {
    let c8 = channels & ~7
    var acc = F8()
    var i = 0
    while i < c8 { acc += load8(x + i); i += 8 }
    var sum = acc.sum()
    while i < channels { sum += x[i]; i += 1 }
    let mean = sum / Float(channels)

    let vmean = F8(repeating: mean)
    var accSq = F8()
    i = 0
    while i < c8 { let d = load8(x + i) - vmean; accSq += d * d; i += 8 }
    var sumSq = accSq.sum()
    while i < channels { let d = x[i] - mean; sumSq += d * d; i += 1 }
    let rstd = 1 / (sumSq / Float(channels) + eps).squareRoot()

    let vrstd = F8(repeating: rstd)
    i = 0
    while i < c8 {
        var v = (load8(x + i) - vmean) * vrstd
        if let weight { v *= load8(weight + i) }
        if let bias { v += load8(bias + i) }
        store8(v, out + i)
        i += 8
    }
    while i < channels {
        var v = (x[i] - mean) * rstd
        if let weight { v *= weight[i] }
        if let bias { v += bias[i] }
        out[i] = v
        i += 1
    }
}

/// out[j] = activation(out[j] + bias[j]) over one row of `count` elements.
@inline(__always)
func biasActivationRow(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, _ count: Int, relu: Bool) {
    let zero = F8()
    var i = 0
    while i + 8 <= count {
        var v = load8(out + i)
        if let bias { v += load8(bias + i) }
        if relu { v = max8(v, zero) }
        store8(v, out + i)
        i += 8
    }
    while i < count {
        var v = out[i]
        if let bias { v += bias[i] }
        if relu { v = max(v, 0) }
        out[i] = v
        i += 1
    }
}
