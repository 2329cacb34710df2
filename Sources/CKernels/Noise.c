// Noise.swift's Gaussian and uniform chunks, operation for operation: integer Philox, then fp32
// +, −, ×, sqrt with no contraction into fused multiply-adds, so every clone and every backend
// gives the same bits. Each function exists as an AVX2 clone and a baseline one.
#include "CNoise.h"
#include "Clones.h"
#include <string.h>

#pragma STDC FP_CONTRACT OFF

typedef uint32_t u8x __attribute__((ext_vector_type(8)));
typedef uint64_t w8x __attribute__((ext_vector_type(8)));
typedef float f8x __attribute__((ext_vector_type(8)));

#if ZT_CAN_CLONE
#define ZT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ZT_CLONES
#endif

// Helpers take and give vectors through pointers: a 256-bit vector passed by value would need
// AVX in the baseline clone's calling convention. Everything inlines into the two entry points.
#define ZT_INLINE static inline __attribute__((always_inline))

/// Chunk `chunk`'s eight Philox4x32-10 blocks, one per lane: counter (block lo, block hi,
/// `tensor`, 0) with block = 8·chunk + lane, key (seed lo, seed hi).
ZT_INLINE void philox8(uint64_t seed, uint32_t tensor, int64_t chunk, u8x x[4]) {
    w8x lanes = (w8x){0, 1, 2, 3, 4, 5, 6, 7} + (uint64_t)chunk * 8;
    u8x x0 = __builtin_convertvector(lanes, u8x), x1 = __builtin_convertvector(lanes >> 32, u8x);
    u8x x2 = (u8x)tensor, x3 = (u8x)0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        w8x p0 = __builtin_convertvector(x0, w8x) * (uint64_t)0xD2511F53u;
        w8x p1 = __builtin_convertvector(x2, w8x) * (uint64_t)0xCD9E8D57u;
        u8x hi0 = __builtin_convertvector(p0 >> 32, u8x), lo0 = __builtin_convertvector(p0, u8x);
        u8x hi1 = __builtin_convertvector(p1 >> 32, u8x), lo1 = __builtin_convertvector(p1, u8x);
        x0 = hi1 ^ x1 ^ k0;
        x1 = lo1;
        x2 = hi0 ^ x3 ^ k1;
        x3 = lo0;
    }
    x[0] = x0; x[1] = x1; x[2] = x2; x[3] = x3;
}

/// ((x >> 9) + 0.5) · 2⁻²³ exactly: the 23 bits as the mantissa of a float in [1, 2), minus 1, plus 2⁻²⁴.
ZT_INLINE void unit(const u8x *x, f8x *u) {
    u8x bits = (*x >> 9) | 0x3F800000u;
    f8x f;
    memcpy(&f, &bits, sizeof f);
    *u = (f - 1.0f) + 5.9604645e-8f;
}

/// Small non-negative integers as floats, exactly.
ZT_INLINE void small_float(const u8x *n, f8x *out) {
    u8x bits = *n | 0x4B000000u;
    memcpy(out, &bits, sizeof bits);
    *out = *out - 8388608.0f;
}

/// Natural log on (0, 1] (Noise.swift's specification).
ZT_INLINE void log8(const f8x *u, f8x *out) {
    u8x bits;
    memcpy(&bits, u, sizeof bits);
    u8x mantissa = bits & 0x007FFFFFu;
    u8x small = (u8x)0 - (((0x003504F2u - mantissa) >> 31) ^ 1u);
    u8x m_bits = mantissa | (0x3F000000u + (small & 0x00800000u));
    f8x m;
    memcpy(&m, &m_bits, sizeof m);
    u8x e_bits = bits >> 23, bias = 126u + (small & 1u);
    f8x e, b;
    small_float(&e_bits, &e);
    small_float(&bias, &b);
    f8x exponent = e - b;
    f8x f = m - 1.0f, z = f * f;
    f8x p = (f8x)7.0376836292e-2f;
    p = p * f - 1.1514610310e-1f;
    p = p * f + 1.1676998740e-1f;
    p = p * f - 1.2420140846e-1f;
    p = p * f + 1.4249322787e-1f;
    p = p * f - 1.6668057665e-1f;
    p = p * f + 2.0000714765e-1f;
    p = p * f - 2.4999993993e-1f;
    p = p * f + 3.3333331174e-1f;
    f8x y = p * f * z;
    y = y + exponent * -2.12194440e-4f;
    y = y - 0.5f * z;
    *out = f + y + exponent * 0.693359375f;
}

/// sqrt(−2·log(u)).
ZT_INLINE void radius(const u8x *x, f8x *r) {
    f8x u, l;
    unit(x, &u);
    log8(&u, &l);
    *r = __builtin_elementwise_sqrt(-2.0f * l);
}

/// (cos 2πu, sin 2πu) of the uniform of `x` (Noise.swift's specification).
ZT_INLINE void sincos_two_pi(const u8x *x, f8x *cos_out, f8x *sin_out) {
    f8x u;
    unit(x, &u);
    f8x shifted = u * 4.0f + 12582912.0f;
    f8x quadrant = shifted - 12582912.0f;
    f8x a = (u - quadrant * 0.25f) * 6.2831855f;
    f8x z = a * a;
    f8x sp = (f8x)-1.9515295891e-4f;
    sp = sp * z + 8.3321608736e-3f;
    sp = sp * z - 1.6666654611e-1f;
    f8x sine = a + a * z * sp;
    f8x cp = (f8x)2.443315711809948e-5f;
    cp = cp * z - 1.388731625493765e-3f;
    cp = cp * z + 4.166664568298827e-2f;
    f8x cosine = 1.0f - 0.5f * z + z * z * cp;
    u8x q, c, s;
    memcpy(&q, &shifted, sizeof q);
    memcpy(&c, &cosine, sizeof c);
    memcpy(&s, &sine, sizeof s);
    q = q & 3u;
    u8x swap = (u8x)0 - (q & 1u);
    u8x cos_bits = ((c & ~swap) | (s & swap)) ^ (((q + 1u) & 2u) << 30);
    u8x sin_bits = ((s & ~swap) | (c & swap)) ^ ((q & 2u) << 30);
    memcpy(cos_out, &cos_bits, sizeof cos_bits);
    memcpy(sin_out, &sin_bits, sizeof sin_bits);
}

ZT_CLONES void zt_gaussian_chunk(uint64_t seed, uint32_t tensor, int64_t chunk, float *out) {
    u8x x[4];
    philox8(seed, tensor, chunk, x);
    f8x r0, r1, c0, s0, c1, s1;
    radius(&x[0], &r0);
    radius(&x[2], &r1);
    sincos_two_pi(&x[1], &c0, &s0);
    sincos_two_pi(&x[3], &c1, &s1);
    f8x z[4] = {r0 * c0, r0 * s0, r1 * c1, r1 * s1};
    memcpy(out, z, sizeof z);
}

ZT_CLONES void zt_uniform_chunk(uint64_t seed, int64_t chunk, float *out) {
    u8x x[4];
    philox8(seed, 0xFFFFFFFFu, chunk, x);
    f8x u[4];
    for (int w = 0; w < 4; w++) unit(&x[w], &u[w]);
    memcpy(out, u, sizeof u);
}

ZT_CLONES void zt_add_signs(float *v, uint32_t word, float c) {
    const u8x bit = {1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u};
    for (int group = 0; group < 4; group++) {
        // x + (2³¹ − 1) has its top bit set exactly when the tested bit x is; its inverse's top bit is the sign.
        u8x x = (u8x)word & (bit << (8 * group));
        u8x sign_bits = (~(x + 0x7FFFFFFFu) & 0x80000000u) | 0x3F800000u;
        f8x z, value;
        memcpy(&z, &sign_bits, sizeof z);
        memcpy(&value, v + 8 * group, sizeof value);
        value = value + c * z;
        memcpy(v + 8 * group, &value, sizeof value);
    }
}
