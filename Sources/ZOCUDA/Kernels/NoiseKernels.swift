extension KernelSource {
    /// The device functions every kernel source shares: Philox4x32-10, the noise streams
    /// and stochastic-rounding uniforms of `Noise` (ZOCore) operation by operation, and the
    /// perturbation term. No entry points.
    static let noiseFunctions = #"""
    typedef unsigned int u32;
    typedef unsigned long long u64;

    __device__ __forceinline__ float bits_to_float(u32 x) { return __uint_as_float(x); }
    __device__ __forceinline__ u32 float_to_bits(float x) { return __float_as_uint(x); }

    // Philox4x32-10 of one counter and key (Salmon et al., SC'11).
    __device__ __forceinline__ uint4 zo_philox(uint4 x, u32 k0, u32 k1) {
        for (int round = 0; round < 10; ++round) {
            if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
            u32 hi0 = __umulhi(x.x, 0xD2511F53u), lo0 = x.x * 0xD2511F53u;
            u32 hi1 = __umulhi(x.z, 0xCD9E8D57u), lo1 = x.z * 0xCD9E8D57u;
            x = make_uint4(hi1 ^ x.y ^ k0, lo1, hi0 ^ x.w ^ k1, lo0);
        }
        return x;
    }

    // Word w of the Philox block that holds element `index` of a Gaussian stream (seed, tensor)
    // or of the rounding uniforms: block = (index / 32)·8 + index % 8, word = (index % 32) / 8.
    __device__ __forceinline__ uint4 zo_block(u64 seed, u32 tensor, u64 index) {
        u64 block = (index / 32) * 8 + index % 8;
        return zo_philox(make_uint4((u32)block, (u32)(block >> 32), tensor, 0u), (u32)seed, (u32)(seed >> 32));
    }

    // ((x >> 9) + 0.5)·2⁻²³, exactly.
    __device__ __forceinline__ float zo_unit(u32 x) {
        return __fadd_rn(__fsub_rn(bits_to_float((x >> 9) | 0x3F800000u), 1.0f), 5.9604645e-8f);
    }

    __device__ __forceinline__ float zo_small_float(u32 n) { return __fsub_rn(bits_to_float(n | 0x4B000000u), 8388608.0f); }

    // Natural log for u in (0, 1], as Noise.log.
    __device__ float zo_log(float u) {
        u32 bits = float_to_bits(u);
        u32 mantissa = bits & 0x007FFFFFu;
        u32 small = 0u - (((0x003504F2u - mantissa) >> 31) ^ 1u);
        float m = bits_to_float(mantissa | (0x3F000000u + (small & 0x00800000u)));
        float exponent = __fsub_rn(zo_small_float(bits >> 23), zo_small_float(126u + (small & 1u)));
        float f = __fsub_rn(m, 1.0f);
        float z = __fmul_rn(f, f);
        float p = 7.0376836292e-2f;
        p = __fsub_rn(__fmul_rn(p, f), 1.1514610310e-1f);
        p = __fadd_rn(__fmul_rn(p, f), 1.1676998740e-1f);
        p = __fsub_rn(__fmul_rn(p, f), 1.2420140846e-1f);
        p = __fadd_rn(__fmul_rn(p, f), 1.4249322787e-1f);
        p = __fsub_rn(__fmul_rn(p, f), 1.6668057665e-1f);
        p = __fadd_rn(__fmul_rn(p, f), 2.0000714765e-1f);
        p = __fsub_rn(__fmul_rn(p, f), 2.4999993993e-1f);
        p = __fadd_rn(__fmul_rn(p, f), 3.3333331174e-1f);
        float y = __fmul_rn(__fmul_rn(p, f), z);
        y = __fadd_rn(y, __fmul_rn(exponent, -2.12194440e-4f));
        y = __fsub_rn(y, __fmul_rn(0.5f, z));
        return __fadd_rn(__fadd_rn(f, y), __fmul_rn(exponent, 0.693359375f));
    }

    // (cos 2πu, sin 2πu) as Noise.sinCosTwoPi: exact quadrant, Cephes polynomials, bit selects.
    __device__ void zo_sincos_2pi(float u, float *c, float *s) {
        const float magic = 12582912.0f;
        float shifted = __fadd_rn(__fmul_rn(u, 4.0f), magic);
        float quadrant = __fsub_rn(shifted, magic);
        float a = __fmul_rn(__fsub_rn(u, __fmul_rn(quadrant, 0.25f)), 6.2831855f);
        float z = __fmul_rn(a, a);
        float sp = -1.9515295891e-4f;
        sp = __fadd_rn(__fmul_rn(sp, z), 8.3321608736e-3f);
        sp = __fsub_rn(__fmul_rn(sp, z), 1.6666654611e-1f);
        float sine = __fadd_rn(a, __fmul_rn(__fmul_rn(a, z), sp));
        float cp = 2.443315711809948e-5f;
        cp = __fsub_rn(__fmul_rn(cp, z), 1.388731625493765e-3f);
        cp = __fadd_rn(__fmul_rn(cp, z), 4.166664568298827e-2f);
        float cosine = __fadd_rn(__fsub_rn(1.0f, __fmul_rn(0.5f, z)), __fmul_rn(__fmul_rn(z, z), cp));
        u32 q = float_to_bits(shifted) & 3u;
        u32 swap = 0u - (q & 1u);
        u32 cb = float_to_bits(cosine), sb = float_to_bits(sine);
        *c = bits_to_float(((cb & ~swap) | (sb & swap)) ^ (((q + 1u) & 2u) << 30));
        *s = bits_to_float(((sb & ~swap) | (cb & swap)) ^ ((q & 2u) << 30));
    }

    // z of element `index` of stream (seed, tensor); kind 0 Gaussian, 1 Rademacher, 2 ones.
    __device__ float zo_noise(int kind, u64 seed, u32 tensor, u64 index) {
        if (kind == 2) return 1.0f;
        if (kind == 1) {
            // One bit per element: bit index % 32 of word (index / 32) % 4 of block index / 128.
            u64 block = index / 128;
            uint4 b = zo_philox(make_uint4((u32)block, (u32)(block >> 32), tensor, 1u), (u32)seed, (u32)(seed >> 32));
            u32 c = (u32)((index / 32) % 4);
            u32 w = c == 0 ? b.x : c == 1 ? b.y : c == 2 ? b.z : b.w;
            return bits_to_float(((~(w >> (index % 32)) & 1u) << 31) | 0x3F800000u);
        }
        uint4 x = zo_block(seed, tensor, index);
        u32 word = (u32)((index % 32) / 8);
        float r = __fsqrt_rn(__fmul_rn(-2.0f, zo_log(zo_unit(word < 2 ? x.x : x.z))));
        float c, s;
        zo_sincos_2pi(zo_unit(word < 2 ? x.y : x.w), &c, &s);
        return __fmul_rn(r, (word & 1u) ? s : c);
    }

    // The stochastic-rounding uniform of element `index` of stream `seed` (tensor id 2³²−1).
    __device__ float zo_uniform(u64 seed, u64 index) {
        uint4 x = zo_block(seed, 0xFFFFFFFFu, index);
        u32 word = (u32)((index % 32) / 8);
        return zo_unit(word == 0 ? x.x : word == 1 ? x.y : word == 2 ? x.z : x.w);
    }

    // Perturbation terms passed by value (KernelTerms: PerturbationTerm's fields).
    \#(KernelTerms.declaration)

    """#

    /// The perturbation pass of `Backend.perturb` on one tensor (and the noise itself, for
    /// parity checks). Compiled with `--fmad=false` so that every a·b + c rounds twice, as the
    /// CPU computes it: z and the perturbed weights then match the CPU backend bit for bit.
    public static let noise = KernelSource(name: "noise", code: noiseFunctions + #"""
    // θ ← a·θ + Σ_k c_k·z_k over the `count` elements of one tensor (stream `tensor`), grid-stride;
    // c_k is the term's decay coefficient for a tensor that decays, else its coefficient (and a = 1).
    \#(NoiseKernels.perturb.declaration) {
        for (u64 e = (u64)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (u64)gridDim.x * blockDim.x) {
            float v = theta[e];
            if (decays) v = __fmul_rn(v, decay_factor);
            for (int k = 0; k < terms.count; ++k) {
                float c = decays ? terms.term[k].decay_coefficient : terms.term[k].coefficient;
                v = __fadd_rn(v, __fmul_rn(c, zo_noise(kind, terms.term[k].seed, tensor, e)));
            }
            theta[e] = v;
        }
    }

    // z of elements [0, count) of stream (seed, tensor), for parity tests.
    \#(NoiseKernels.fillNoise.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x)
            out[i] = zo_noise(kind, seed, tensor, i);
    }
    """#, entryPoints: [NoiseKernels.perturb.name, NoiseKernels.fillNoise.name])
}

/// The noise source's kernels.
enum NoiseKernels {
    static let perturb = KernelSignature<Out<Float>, UInt64, UInt32, Int32, KernelTerms, Float, Int32>(
        "zo_perturb", "theta", "count", "tensor", "decays", "terms", "decay_factor", "kind")
    static let fillNoise = KernelSignature<Out<Float>, UInt64, Int32, UInt64, UInt32>(
        "zo_fill_noise", "out", "count", "kind", "seed", "tensor")
}
