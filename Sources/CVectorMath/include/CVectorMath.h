// Vector operations Swift's SIMD types do not lower to single instructions. No logic: each
// function is one clang builtin on an 8-lane float vector (imported as SIMD8<Float>).
#ifndef ZOTUNE_CVECTORMATH_H
#define ZOTUNE_CVECTORMATH_H

typedef float zt_float8 __attribute__((ext_vector_type(8)));

/// IEEE square root of each lane (correctly rounded, like CUDA's __fsqrt_rn).
static inline __attribute__((always_inline)) zt_float8 zt_sqrt8(zt_float8 x) {
    return __builtin_elementwise_sqrt(x);
}

#endif
