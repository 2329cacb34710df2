/// SIMD building blocks for the CPU kernels: 8-lane loads, exp, reductions.
/// Pointers are unaligned-safe; callers handle the tail (count % 8) with scalar code.

typealias F8 = SIMD8<Float>

@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always)
func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}

/// e^x for 8 lanes: Cody-Waite range reduction x = n·ln2 + r, a degree-6 polynomial for
/// e^r on |r| ≤ ln2/2 (Cephes' expf coefficients), then scaling by 2^n through the exponent
/// bits. Relative error ≤ 2 ulp on [-87.3, 88.7]; inputs below are flushed to ~0.
/// Rounding to an integer uses the 1.5·2^23 trick so everything stays in vector registers.
@inline(__always)
func exp8(_ input: F8) -> F8 {
    let low = F8(repeating: -87.3), high = F8(repeating: 88.7)
    var x = input.replacing(with: low, where: input .< low)
    x.replace(with: high, where: x .> high)
    let magic = F8(repeating: 12_582_912)  // 1.5 · 2^23
    let shifted = x * 1.442_695_04 + magic
    let n = shifted - magic                 // round(x · log2 e)
    var r = x - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p = F8(repeating: 1.987_569_150_0e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let y = p * r * r + r + 1
    // The low mantissa bits of `shifted` hold n; move n + 127 into the exponent field.
    let bits = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127
    return y * unsafeBitCast(bits &<< 23, to: F8.self)
}

/// Lane-wise maximum (a blend, which `pointwiseMax` does not always become).
@inline(__always)
func max8(_ a: F8, _ b: F8) -> F8 {
    a.replacing(with: b, where: b .> a)
}

/// Scalar e^x with the same algorithm as `exp8`, for tails.
@inline(__always)
func exp1(_ x: Float) -> Float {
    exp8(F8(repeating: x))[0]
}

/// Largest element of p[0..<count] (count ≥ 1).
@inline(__always)
func maxElement(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    var i = 0
    var best = -Float.infinity
    if count >= 8 {
        var m = load8(p)
        i = 8
        while i + 8 <= count {
            m = max8(m, load8(p + i))
            i += 8
        }
        best = m.max()
    }
    while i < count {
        best = max(best, p[i])
        i += 1
    }
    return best
}

/// Σ p[i]·q[i] over count elements.
@inline(__always)
func dot(_ p: UnsafePointer<Float>, _ q: UnsafePointer<Float>, _ count: Int) -> Float {
    var acc = F8()
    var i = 0
    while i + 8 <= count {
        acc += load8(p + i) * load8(q + i)
        i += 8
    }
    var sum = acc.sum()
    while i < count {
        sum += p[i] * q[i]
        i += 1
    }
    return sum
}

/// y[i] += a·x[i] over count elements.
@inline(__always)
func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int) {
    var i = 0
    let va = F8(repeating: a)
    while i + 8 <= count {
        var v = load8(y + i)
        v += va * load8(x + i)
        store8(v, y + i)
        i += 8
    }
    while i < count {
        y[i] += a * x[i]
        i += 1
    }
}
