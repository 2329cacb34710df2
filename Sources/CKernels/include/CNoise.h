// Perturbation noise for one 32-element chunk (Gaussian: Philox4x32-10 + Box-Muller; a
// Rademacher term's update), in C so
// that it is compiled twice — for AVX2 CPUs and for baseline x86-64 — and picked at load time
// (target_clones), without build flags. Noise.swift specifies the algorithm; this is its code.
#ifndef ZOTUNE_CNOISE_H
#define ZOTUNE_CNOISE_H

#include <stdint.h>

/// z for elements 32·chunk ..< 32·chunk + 32 of tensor `tensor` of the Gaussian stream `seed`
/// into out[0..<32].
void zt_gaussian_chunk(uint64_t seed, uint32_t tensor, int64_t chunk, float *out);

/// The 32 uniforms in (0, 1) of chunk `chunk` of the stream `seed` (stochastic rounding's).
void zt_uniform_chunk(uint64_t seed, int64_t chunk, float *out);

/// v[j] += c · (+1 if bit j of `word` is set, else −1) for j < 32: one term of a Rademacher
/// perturbation over a chunk (Noise.signs, then a multiply and an add per element).
void zt_add_signs(float *v, uint32_t word, float c);

#endif
