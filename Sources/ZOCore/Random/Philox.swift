/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
/// counter-based generator. Output is a pure function of (counter, key), so any element of
/// any perturbation can be regenerated anywhere, in any order, on any backend.
public enum Philox {
    static let m0: UInt32 = 0xD251_1F53, m1: UInt32 = 0xCD9E_8D57
    static let w0: UInt32 = 0x9E37_79B9, w1: UInt32 = 0xBB67_AE85

    /// The 4 output words for one counter and key (the reference implementation).
    public static func block(counter: SIMD4<UInt32>, key: SIMD2<UInt32>) -> SIMD4<UInt32> {
        let out = block(counter[0], counter[1], counter[2], counter[3], key: (key[0], key[1]))
        return SIMD4(out.0, out.1, out.2, out.3)
    }

    /// One block in scalar arithmetic (the Rademacher stream's: one block feeds 128 elements).
    @inline(__always)
    static func block(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32,
                      key: (UInt32, UInt32)) -> (UInt32, UInt32, UInt32, UInt32) {
        var (x0, x1, x2, x3) = (c0, c1, c2, c3)
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 {
                k0 &+= w0
                k1 &+= w1
            }
            let p0 = UInt64(x0) &* UInt64(m0), p1 = UInt64(x2) &* UInt64(m1)
            (x0, x1, x2, x3) = (UInt32(truncatingIfNeeded: p1 >> 32) ^ x1 ^ k0, UInt32(truncatingIfNeeded: p1),
                                UInt32(truncatingIfNeeded: p0 >> 32) ^ x3 ^ k1, UInt32(truncatingIfNeeded: p0))
        }
        return (x0, x1, x2, x3)
    }
}
