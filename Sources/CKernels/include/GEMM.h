// The forward linears' matrix product, batch-invariant: out[r][c] (+)= x[r][:] · w[c][:] computed
// by the same operations for every element whatever the number of rows and columns, the part of
// the product a call covers and the thread that runs it — so a sequence's activations are the same
// bits in a batch of any size and any company (data-parallel ranks reproduce one process's pass),
// which a BLAS does not promise (OpenBLAS picks kernels by shape; some round rows differently by
// their place in a block).
#ifndef ZOTUNE_GEMM_H
#define ZOTUNE_GEMM_H

#include <stddef.h>

/// out[r·ldo + c] = (out[r·ldo + c] if `accumulate` else 0) + Σ_i x[r·k + i] · w[c·k + i] for
/// r < rows, c < columns: x is [rows, k], w is [columns, k] (a linear's weight rows), both with
/// rows k floats apart. Each dot product: eight partial sums over i = 8j + lane in i order, added
/// pairwise in a fixed tree, then the k mod 8 tail in order (x86-64-v3 clone: fused multiply-adds;
/// baseline clone: multiply then add).
void zt_gemm_nt(const float *x, const float *w, float *out, ptrdiff_t rows, ptrdiff_t columns, ptrdiff_t k, ptrdiff_t ldo,
                int accumulate);

#endif
