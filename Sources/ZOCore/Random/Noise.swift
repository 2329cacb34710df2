import CKernels

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
///   `log` (Cephes' logf polynomial after splitting off the exponent), `cos` and `sin` (an exact
///   quadrant, then Cephes' sinf/cosf polynomials) are fixed polynomials with IEEE fp32 +, −, ×,
///   sqrt and no fused multiply-adds, coded in CKernels/Noise.c (compiled for AVX2 and for baseline
///   x86-64, picked at load time) and in the CUDA noise kernel.
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
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { z in
            zt_gaussian_chunk(seed, tensor, Int64(chunk), z.baseAddress!)
            return load(z.baseAddress!)
        }
    }

    /// 32 uniforms in (0, 1) for chunk `chunk` of the stream `seed`: the words of the
    /// reserved tensor id `UInt32.max`, made uniform as the Gaussian's inputs are. Stochastic
    /// rounding draws from them.
    @inline(__always)
    public static func uniforms(seed: UInt64, chunk: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { u in
            zt_uniform_chunk(seed, Int64(chunk), u.baseAddress!)
            return load(u.baseAddress!)
        }
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
        // Each lane tests its own bit with a constant mask (no per-lane shift counts: those need AVX2).
        let w = SIMD8(repeating: word), bit = SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128)
        return (sign(w & bit), sign(w & (bit &<< 8)), sign(w & (bit &<< 16)), sign(w & (bit &<< 24)))
    }

    @inline(__always)
    static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// Per lane, +1 where the tested bit is set (x ≠ 0), −1 where it is not: x + (2³¹ − 1) has its
    /// top bit set exactly when x ≠ 0 (x is 0 or one bit), and its inverse's top bit is the sign.
    /// Integer adds and masks only, so that it stays in vector registers without AVX2.
    @inline(__always)
    static func sign(_ x: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast((~(x &+ 0x7FFF_FFFF) & 0x8000_0000) | 0x3F80_0000, to: SIMD8<Float>.self)
    }

    /// Four 8-lane groups from 32 floats.
    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
        let raw = UnsafeRawPointer(p)
        return (raw.loadUnaligned(as: SIMD8<Float>.self), raw.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self),
                raw.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), raw.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
    }
}
