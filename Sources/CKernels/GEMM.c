// GEMM.h's product: register tiles of up to 3 rows × 4 columns (12 eight-wide accumulators), every
// tile shape doing each element's arithmetic identically, all inlined into each clone (so every
// element of a product is computed by the same clone's instructions).
#include "GEMM.h"
#include "Clones.h"
#include <string.h>

typedef float f8x __attribute__((ext_vector_type(8)));

#if ZT_CAN_CLONE
#define ZT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ZT_CLONES
#endif
#define ZT_INLINE static inline __attribute__((always_inline))

/// Columns (rows of w) per pass over the rows: 64 rows of k floats stay in a core's L2.
enum { COLUMN_BLOCK = 64 };

ZT_INLINE void load8(const float *p, f8x *v) { memcpy(v, p, sizeof *v); }

/// One element: the lanes of `a` added pairwise, then the tail i = from..<k in order.
ZT_INLINE float finish(const f8x *a, const float *x, const float *w, ptrdiff_t from, ptrdiff_t k) {
    float s = (((*a)[0] + (*a)[4]) + ((*a)[2] + (*a)[6])) + (((*a)[1] + (*a)[5]) + ((*a)[3] + (*a)[7]));
    for (ptrdiff_t i = from; i < k; i++) s += x[i] * w[i];
    return s;
}

/// A tile of R ≤ 3 rows and C ≤ 4 columns (R and C constant after inlining).
ZT_INLINE void tile(int R, int C, const float *x, const float *w, float *out, ptrdiff_t ldo, ptrdiff_t k, int accumulate) {
    f8x acc[3][4];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) acc[r][c] = (f8x)0;
    ptrdiff_t k8 = k & ~(ptrdiff_t)7;
    for (ptrdiff_t i = 0; i < k8; i += 8) {
        f8x xv[3], wv;
        for (int r = 0; r < R; r++) load8(x + r * k + i, &xv[r]);
        for (int c = 0; c < C; c++) {
            load8(w + c * k + i, &wv);
            for (int r = 0; r < R; r++) acc[r][c] = xv[r] * wv + acc[r][c];
        }
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float s = finish(&acc[r][c], x + r * k, w + c * k, k8, k);
            out[r * ldo + c] = accumulate ? out[r * ldo + c] + s : s;
        }
}

ZT_CLONES
void zt_gemm_nt(const float *x, const float *w, float *out, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t k, ptrdiff_t ldo,
                int accumulate) {
    for (ptrdiff_t c0 = 0; c0 < columns; c0 += COLUMN_BLOCK) {
        ptrdiff_t c1 = c0 + COLUMN_BLOCK < columns ? c0 + COLUMN_BLOCK : columns;
        for (ptrdiff_t r = 0; r < rows; r += 3) {
            int R = rows - r < 3 ? (int)(rows - r) : 3;
            for (ptrdiff_t c = c0; c < c1; c += 4) {
                int C = c1 - c < 4 ? (int)(c1 - c) : 4;
                const float *xs = x + r * k, *ws = w + c * k;
                float *o = out + r * ldo + c;
                // Each shape spelled out, so that each call inlines with constant R and C.
                switch (R * 4 + C) {
                case 16: tile(3, 4, xs, ws, o, ldo, k, accumulate); break;
                case 15: tile(3, 3, xs, ws, o, ldo, k, accumulate); break;
                case 14: tile(3, 2, xs, ws, o, ldo, k, accumulate); break;
                case 13: tile(3, 1, xs, ws, o, ldo, k, accumulate); break;
                case 12: tile(2, 4, xs, ws, o, ldo, k, accumulate); break;
                case 11: tile(2, 3, xs, ws, o, ldo, k, accumulate); break;
                case 10: tile(2, 2, xs, ws, o, ldo, k, accumulate); break;
                case 9: tile(2, 1, xs, ws, o, ldo, k, accumulate); break;
                case 8: tile(1, 4, xs, ws, o, ldo, k, accumulate); break;
                case 7: tile(1, 3, xs, ws, o, ldo, k, accumulate); break;
                case 6: tile(1, 2, xs, ws, o, ldo, k, accumulate); break;
                default: tile(1, 1, xs, ws, o, ldo, k, accumulate); break;
                }
            }
        }
    }
}
