/// Kernels of the Llama family: RMSNorm, rotary embeddings, SwiGLU.

/// out = (offset + weight) · (x / sqrt(mean(x²) + eps)) over one row of C (as Hugging Face's
/// LlamaRMSNorm, offset 0, and GemmaRMSNorm, offset 1: the normalized value is rounded before
/// the weight multiplies it).
@inline(__always)
func rmsNormRow(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ offset: Float, _ out: UnsafeMutablePointer<Float>,
                _ channels: Int, _ eps: Float) {
    var acc = F8()
    var i = 0
    while i + 8 <= channels { let v = load8(x + i); acc += v * v; i += 8 }
    var sum = acc.sum()
    while i < channels { sum += x[i] * x[i]; i += 1 }
    let scale = 1 / (sum / Float(channels) + eps).squareRoot()
    let vscale = F8(repeating: scale), voffset = F8(repeating: offset)
    i = 0
    while i + 8 <= channels { store8((voffset + load8(weight + i)) * (load8(x + i) * vscale), out + i); i += 8 }
    while i < channels { out[i] = (offset + weight[i]) * (x[i] * scale); i += 1 }
}

/// (a, b) = (x[i], x[i + half]) -> (a·cos[i] − b·sin[i], b·cos[i] + a·sin[i]) for i < half.
@inline(__always)
func rotateHalf(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, half: Int) {
    for i in 0..<half {
        let a = x[i], b = x[i + half]
        x[i] = a * cos[i] - b * sin[i]
        x[i + half] = b * cos[i] + a * sin[i]
    }
}

/// out[j] = silu(gate[j]) · up[j] = gate / (1 + e^−gate) · up over one row; gate is
/// gateUp[0..<F], up is gateUp[F..<2F].
@inline(__always)
func swigluRow(_ gateUp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ width: Int) {
    let up = gateUp + width
    var j = 0
    while j + 8 <= width {
        let g = load8(gateUp + j)
        store8(g / (1 + exp8(-g)) * load8(up + j), out + j)
        j += 8
    }
    while j < width {
        let g = gateUp[j]
        out[j] = g / (1 + exp1(-g)) * up[j]
        j += 1
    }
}
