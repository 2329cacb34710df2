extension KernelSource {
    /// The link codecs of `LinkFormat` (decode on arrival, encode before write-back) as the
    /// scalar definition in ZOCore states them: `LinkFormat.round` to nearest or
    /// stochastically with the uniforms of `zo_uniform`, then the format's bits; fp8 groups of
    /// 128 values share the scale max|v| / 448. Format ids: 1 bf16, 2 fp16, 3 fp8.
    public static let codecs = KernelSource(name: "codecs", code: noiseFunctions + #"""

    // LinkFormat.grid: mantissa bits, smallest normal exponent, largest finite magnitude.
    __device__ __forceinline__ void zo_grid(int format, int *mantissa, int *min_exponent, float *largest) {
        if (format == 1) { *mantissa = 7; *min_exponent = -126; *largest = __uint_as_float(0x7F7F0000u); }
        else if (format == 2) { *mantissa = 10; *min_exponent = -14; *largest = 65504.0f; }
        else { *mantissa = 3; *min_exponent = -6; *largest = 448.0f; }
    }

    // LinkFormat.round: `value` on the format's grid, to nearest-even (uniform < 0) or up with
    // probability (steps − ⌊steps⌋); saturating; NaN, infinities and zeros unchanged.
    __device__ float zo_round(int format, float value, float uniform) {
        u32 bits = __float_as_uint(value);
        if ((bits & 0x7F800000u) == 0x7F800000u || value == 0.0f) return value;
        int mantissa, min_exponent; float largest;
        zo_grid(format, &mantissa, &min_exponent, &largest);
        float magnitude = fminf(fabsf(value), largest);
        int exponent = (int)((__float_as_uint(magnitude) >> 23) & 0xFF) - 127;  // float subnormals: -127
        if (exponent < min_exponent) exponent = min_exponent;
        float spacing = ldexpf(1.0f, exponent - mantissa);
        float steps = __fdiv_rn(magnitude, spacing);  // exact: a power of two
        float rounded;
        if (uniform >= 0.0f) {
            float below = floorf(steps);
            rounded = __fmul_rn(uniform < __fsub_rn(steps, below) ? __fadd_rn(below, 1.0f) : below, spacing);
        } else {
            rounded = __fmul_rn(rintf(steps), spacing);
        }
        rounded = fminf(rounded, largest);
        return value < 0.0f ? -rounded : rounded;
    }

    // Half.floatToBF16 (round to nearest-even on the bits; NaN stays quiet).
    __device__ __forceinline__ unsigned short zo_bf16_bits(float value) {
        u32 bits = __float_as_uint(value);
        if (value != value) return (unsigned short)((bits >> 16) | 0x40u);
        return (unsigned short)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    // IEEE binary16 bits of a value already on the fp16 grid (or ±inf, NaN).
    __device__ unsigned short zo_f16_bits(float value) {
        u32 bits = __float_as_uint(value), sign = (bits >> 16) & 0x8000u;
        u32 exponent = (bits >> 23) & 0xFF, mantissa = bits & 0x7FFFFFu;
        if (exponent == 0xFF) return (unsigned short)(sign | 0x7C00u | (mantissa ? 0x200u | (mantissa >> 13) : 0u));
        float magnitude = fabsf(value);
        if (magnitude < 6.103515625e-05f)  // below 2⁻¹⁴: multiples of 2⁻²⁴
            return (unsigned short)(sign | (u32)__fmul_rn(magnitude, 16777216.0f));
        return (unsigned short)(sign | ((exponent - 112u) << 10) | (mantissa >> 13));
    }

    __device__ __forceinline__ float zo_f16_value(unsigned short h) {
        u32 sign = ((u32)h & 0x8000u) << 16, exponent = ((u32)h >> 10) & 0x1F, mantissa = (u32)h & 0x3FFu;
        if (exponent == 0x1F) return __uint_as_float(sign | 0x7F800000u | (mantissa ? 0x400000u | (mantissa << 13) : 0u));
        if (exponent == 0) {
            float m = __fmul_rn((float)mantissa, 5.9604644775390625e-08f);  // ·2⁻²⁴, exact
            return sign ? -m : m;
        }
        return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    }

    // LinkFormat.e4m3Bits of a value on the e4m3 grid, and e4m3Value.
    __device__ unsigned char zo_e4m3_bits(float value) {
        if (value != value) return 0x7F;
        if ((__float_as_uint(value) & 0x7FFFFFFFu) == 0x7F800000u) return value < 0.0f ? 0xFF : 0x7F;  // no infinities: NaN
        unsigned char sign = (__float_as_uint(value) >> 31) ? 0x80 : 0;
        float magnitude = fabsf(value);
        if (magnitude < 0.015625f) return sign | (unsigned char)__fmul_rn(magnitude, 512.0f);
        int exponent = (int)((__float_as_uint(magnitude) >> 23) & 0xFF) - 127;
        unsigned char mantissa = (unsigned char)__fmul_rn(__fsub_rn(__fdiv_rn(magnitude, ldexpf(1.0f, exponent)), 1.0f), 8.0f);
        return sign | (unsigned char)((exponent + 7) << 3) | mantissa;
    }

    __device__ float zo_e4m3_value(unsigned char bits) {
        if ((bits & 0x7F) == 0x7F) return __uint_as_float(0x7FC00000u);
        int exponent = (bits >> 3) & 0xF;
        float mantissa = (float)(bits & 7);
        float magnitude = exponent == 0 ? __fdiv_rn(mantissa, 512.0f)
                                        : __fmul_rn(__fadd_rn(1.0f, __fdiv_rn(mantissa, 8.0f)), ldexpf(1.0f, exponent - 7));
        return (bits & 0x80) ? -magnitude : magnitude;
    }

    // Encoded layout: the payload, then (fp8) one fp32 scale per 128 values after the payload
    // padded to 4 bytes.
    __device__ __forceinline__ float *zo_scales(void *encoded, u64 count) {
        return (float *)((unsigned char *)encoded + (count + 3) / 4 * 4);
    }

    // values → encoded; `seed_low/high` with `stochastic` = 1 round stochastically. One block
    // of 128 threads per group of 128 values.
    \#(CodecKernels.encode.declaration) {
        __shared__ float largest[128];
        u64 i = (u64)blockIdx.x * 128 + threadIdx.x;
        float v = i < count ? values[i] : 0.0f;
        float scale = 1.0f;
        if (format == 3) {
            largest[threadIdx.x] = i < count ? fabsf(v) : 0.0f;  // fmaxf below ignores NaN, as Swift's max does
            __syncthreads();
            for (int stride = 64; stride > 0; stride /= 2) {
                if (threadIdx.x < stride) largest[threadIdx.x] = fmaxf(largest[threadIdx.x], largest[threadIdx.x + stride]);
                __syncthreads();
            }
            float m = largest[0];
            scale = (m > 0.0f && m <= 3.402823466e38f) ? __fdiv_rn(m, 448.0f) : 1.0f;
            if (threadIdx.x == 0) zo_scales(encoded, count)[blockIdx.x] = scale;
        }
        if (i >= count) return;
        float uniform = stochastic ? zo_uniform(seed, i) : -1.0f;
        if (format == 1) ((unsigned short *)encoded)[i] = zo_bf16_bits(zo_round(1, v, uniform));
        else if (format == 2) ((unsigned short *)encoded)[i] = zo_f16_bits(zo_round(2, v, uniform));
        else ((unsigned char *)encoded)[i] = zo_e4m3_bits(zo_round(3, __fdiv_rn(v, scale), uniform));
    }

    \#(CodecKernels.decode.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
            if (format == 1) values[i] = __uint_as_float((u32)((const unsigned short *)encoded)[i] << 16);
            else if (format == 2) values[i] = zo_f16_value(((const unsigned short *)encoded)[i]);
            else values[i] = __fmul_rn(zo_e4m3_value(((const unsigned char *)encoded)[i]),
                                       zo_scales((void *)encoded, count)[i / 128]);
        }
    }
    """#, entryPoints: [CodecKernels.encode.name, CodecKernels.decode.name])

    /// Every kernel source ZOTune compiles.
    public static let all: [KernelSource] = [.noise, .codecs, .forward, .backward]
}

/// The codec source's kernels.
enum CodecKernels {
    static let encode = KernelSignature<In<Float>, Out<DeviceBytes>, UInt64, Int32, Int32, UInt64>(
        "zo_encode", "values", "encoded", "count", "format", "stochastic", "seed")
    static let decode = KernelSignature<In<DeviceBytes>, Out<Float>, UInt64, Int32>(
        "zo_decode", "encoded", "values", "count", "format")
}
