import CVectorMath

/// The distribution of perturbation directions z.
public enum PerturbationKind: String, Sendable, Codable, CaseIterable {
    /// Standard normal (Box-Muller on Philox output).
    case gaussian
    /// ±1 with equal probability.
    case rademacher
    /// z = 1 everywhere, for cross-checking against reference implementations.
    case ones
}

/// z as a pure function of (seed, tensor id, element index), specified operation by operation
/// so that every backend produces the same bits.
///
/// Elements come in chunks of 32, and Philox4x32-10 runs with key (seed low 32 bits, seed
/// high 32 bits):
/// - Gaussian: element i uses counter (block low, block high, tensor id, 0), where
///   block = (i / 32)·8 + i % 8, and output word w = (i % 32) / 8 of that block;
///   u_w = ((x_w >> 9) + 0.5) · 2⁻²³ ∈ (0, 1), exact in fp32;
///   r = sqrt(−2·log(u₀)), z₀ = r·cos(2πu₁), z₁ = r·sin(2πu₁); likewise z₂, z₃ from u₂, u₃;
///   `log`, `cos` and `sin` are the fixed polynomials below, with IEEE fp32 +, −, ×, sqrt
///   and no fused multiply-adds.
/// - Rademacher: one bit per element: chunk c = i / 32 takes word c % 4 of the block with
///   counter (c / 4 low, c / 4 high, tensor id, 1), and z_i = +1 if bit i % 32 of that word is
///   1, else −1 (on the CPU, where a pass generates each block once for its 128 elements, a
///   32nd of the Gaussian's Philox work: the pass is then memory-bound).
public enum Noise {
    /// Writes z for the 32 elements of chunk `chunk` of tensor `tensor` into `out`.
    @inline(__always)
    public static func chunk(_ kind: PerturbationKind, seed: UInt64, tensor: UInt32, chunk: Int,
                             into out: UnsafeMutablePointer<Float>) {
        let z = values(kind, seed: seed, tensor: tensor, chunk: chunk)
        store(z.0, out); store(z.1, out + 8); store(z.2, out + 16); store(z.3, out + 24)
    }

    /// z for the 32 elements of a chunk, as four 8-lane groups (elements 0–7, 8–15, …).
    @inline(__always)
    public static func values(_ kind: PerturbationKind, seed: UInt64, tensor: UInt32, chunk: Int)
        -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        if kind == .ones {
            let one = SIMD8<Float>(repeating: 1)
            return (one, one, one, one)
        }
        if kind == .rademacher {
            return signs(rademacherWords(seed: seed, tensor: tensor, block: chunk / 4)[chunk % 4])
        }
        let first = UInt64(chunk) &* 8
        let lanes = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7) &+ first
        let x = Philox.blocks(SIMD8<UInt32>(truncatingIfNeeded: lanes), SIMD8<UInt32>(truncatingIfNeeded: lanes &>> 32),
                              SIMD8(repeating: tensor), SIMD8(repeating: 0),
                              key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        let (r0, r1) = (radius(unit(x.0)), radius(unit(x.2)))
        let (c0, s0) = sinCosTwoPi(unit(x.1))
        let (c1, s1) = sinCosTwoPi(unit(x.3))
        return (r0 * c0, r0 * s0, r1 * c1, r1 * s1)
    }

    /// 32 uniforms in (0, 1) for chunk `chunk` of the stream `seed`: the words of the
    /// reserved tensor id `UInt32.max`, made uniform as the Gaussian's inputs are. Stochastic
    /// rounding draws from them.
    @inline(__always)
    public static func uniforms(seed: UInt64, chunk: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let first = UInt64(chunk) &* 8
        let lanes = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7) &+ first
        let x = Philox.blocks(SIMD8<UInt32>(truncatingIfNeeded: lanes), SIMD8<UInt32>(truncatingIfNeeded: lanes &>> 32),
                              SIMD8(repeating: .max), SIMD8(repeating: 0),
                              key: SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        return (unit(x.0), unit(x.1), unit(x.2), unit(x.3))
    }

    /// The sign bits of chunks 4·block ..< 4·block + 4 of a Rademacher stream, a word per chunk
    /// (bit j of word w: element 32·(4·block + w) + j).
    @inline(__always)
    public static func rademacherWords(seed: UInt64, tensor: UInt32, block: Int) -> SIMD4<UInt32> {
        let x = Philox.block(UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: UInt64(block) >> 32), tensor, 1,
                             key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        return SIMD4(x.0, x.1, x.2, x.3)
    }

    /// A Rademacher chunk's z from its word: ±1 by bit j for element j.
    @inline(__always)
    public static func signs(_ word: UInt32) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let w = SIMD8(repeating: word), lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7)
        return (sign(w &>> lanes), sign(w &>> (lanes &+ 8)), sign(w &>> (lanes &+ 16)), sign(w &>> (lanes &+ 24)))
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// Per lane, +1 where the low bit is 1, −1 where it is 0 (the sign bit set from the inverted
    /// low bit).
    @inline(__always)
    static func sign(_ x: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast(((~x & 1) &<< 31) | 0x3F80_0000, to: SIMD8<Float>.self)
    }

    /// ((x >> 9) + 0.5) · 2⁻²³, exactly: the 23 bits become the mantissa of a float in [1, 2).
    @inline(__always)
    static func unit(_ x: SIMD8<UInt32>) -> SIMD8<Float> {
        (unsafeBitCast((x &>> 9) | 0x3F80_0000, to: SIMD8<Float>.self) - 1) + 5.960_464_5e-8  // + 2⁻²⁴
    }

    /// Small non-negative integers (< 2²³) as floats, exactly.
    @inline(__always)
    static func float(_ n: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast(n | 0x4B00_0000, to: SIMD8<Float>.self) - 8_388_608
    }

    /// sqrt(−2·log(u)).
    @inline(__always)
    static func radius(_ u: SIMD8<Float>) -> SIMD8<Float> {
        zt_sqrt8(-2 * log(u))
    }

    /// Natural log for u ∈ (0, 1]: u = m·2ᵉ with m ∈ [√½, √2), then Cephes' logf polynomial
    /// in f = m − 1 (relative error ≈ 1e-7).
    @inline(__always)
    static func log(_ u: SIMD8<Float>) -> SIMD8<Float> {
        let bits = unsafeBitCast(u, to: SIMD8<UInt32>.self)
        // Mantissas below that of √½ (0x3504F3) take the next exponent: all ones where small.
        let mantissa = bits & 0x007F_FFFF
        let small = SIMD8<UInt32>(repeating: 0) &- (((0x0035_04F2 &- mantissa) &>> 31) ^ 1)
        let m = unsafeBitCast(mantissa | (0x3F00_0000 &+ (small & 0x0080_0000)), to: SIMD8<Float>.self)
        let exponent = float(bits &>> 23) - float(126 &+ (small & 1))
        let f = m - 1
        let z = f * f
        var p = SIMD8<Float>(repeating: 7.037_683_629_2e-2)
        p = p * f - 1.151_461_031_0e-1
        p = p * f + 1.167_699_874_0e-1
        p = p * f - 1.242_014_084_6e-1
        p = p * f + 1.424_932_278_7e-1
        p = p * f - 1.666_805_766_5e-1
        p = p * f + 2.000_071_476_5e-1
        p = p * f - 2.499_999_399_3e-1
        p = p * f + 3.333_333_117_4e-1
        var y = p * f * z
        y = y + exponent * -2.121_944_4e-4
        y = y - 0.5 * z
        return f + y + exponent * 0.693_359_375
    }

    /// (cos 2πu, sin 2πu) for u ∈ (0, 1): the quadrant q = round(4u) is exact, the rest
    /// a = 2π(u − q/4) ∈ [−π/4, π/4] goes through Cephes' sinf/cosf polynomials.
    @inline(__always)
    static func sinCosTwoPi(_ u: SIMD8<Float>) -> (cos: SIMD8<Float>, sin: SIMD8<Float>) {
        let magic = SIMD8<Float>(repeating: 12_582_912)  // 1.5 · 2²³: rounds to an integer
        let shifted = u * 4 + magic
        let quadrant = shifted - magic
        let a = (u - quadrant * 0.25) * 6.283_185_5
        let z = a * a
        var sinPolynomial = SIMD8<Float>(repeating: -1.951_529_589_1e-4)
        sinPolynomial = sinPolynomial * z + 8.332_160_873_6e-3
        sinPolynomial = sinPolynomial * z - 1.666_665_461_1e-1
        let sine = a + a * z * sinPolynomial
        var cosPolynomial = SIMD8<Float>(repeating: 2.443_315_711_809_948e-5)
        cosPolynomial = cosPolynomial * z - 1.388_731_625_493_765e-3
        cosPolynomial = cosPolynomial * z + 4.166_664_568_298_827e-2
        let cosine = 1 - 0.5 * z + z * z * cosPolynomial
        // Quadrant q: odd q swaps cos and sin; cos is negative for q = 1, 2 and sin for q = 2, 3.
        // Done on the bits (exact selects and sign flips, which vectorize).
        let q = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) & 3
        let swap = SIMD8<UInt32>(repeating: 0) &- (q & 1)
        let c = unsafeBitCast(cosine, to: SIMD8<UInt32>.self), s = unsafeBitCast(sine, to: SIMD8<UInt32>.self)
        let cosBits = ((c & ~swap) | (s & swap)) ^ (((q &+ 1) & 2) &<< 30)
        let sinBits = ((s & ~swap) | (c & swap)) ^ ((q & 2) &<< 30)
        return (unsafeBitCast(cosBits, to: SIMD8<Float>.self), unsafeBitCast(sinBits, to: SIMD8<Float>.self))
    }
}
