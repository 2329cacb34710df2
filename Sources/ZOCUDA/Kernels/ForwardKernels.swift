extension KernelSource {
    /// Block-wide sums and maxima for kernels run with 256 threads a block (ZO_THREADS),
    /// INFINITY (NVRTC has no math.h) and GELU's constants. No entry points.
    static let reductionFunctions = #"""

    #define ZO_THREADS 256
    #define INFINITY __int_as_float(0x7F800000)
    // √(2/π) and the cubic coefficient of PyTorch's tanh approximation of GELU.
    #define ZO_GELU_BETA 0.7978845608028654f
    #define ZO_GELU_KAPPA 0.044715f

    // Block-wide sum / max of one value per thread (256 threads); every thread gets the result.
    __device__ float zo_block_sum(float v, float *shared) {
        shared[threadIdx.x] = v;
        __syncthreads();
        for (int stride = ZO_THREADS / 2; stride > 0; stride /= 2) {
            if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
            __syncthreads();
        }
        float total = shared[0];
        __syncthreads();
        return total;
    }

    __device__ float zo_block_max(float v, float *shared) {
        shared[threadIdx.x] = v;
        __syncthreads();
        for (int stride = ZO_THREADS / 2; stride > 0; stride /= 2) {
            if (threadIdx.x < stride) shared[threadIdx.x] = fmaxf(shared[threadIdx.x], shared[threadIdx.x + stride]);
            __syncthreads();
        }
        float best = shared[0];
        __syncthreads();
        return best;
    }
    """#

    /// The forward pass's kernels behind `Backend`'s operations (GEMM itself is cuBLAS):
    /// gathers (with the on-the-fly perturbation of a tied token table), bias + activation,
    /// layer and RMS norm, rotary embeddings, SwiGLU, row copies, causal key-masked attention
    /// (tiles of keys with an online softmax: no T×T buffer in device memory), cross-entropy
    /// and arg-max. Reductions use one block of 256 threads per row.
    public static let forward = KernelSource(name: "forward", code: noiseFunctions + reductionFunctions + #"""

    // out[n] (+)= table[indices[n]] for n < count, rows of `width`; with terms, each gathered
    // element is perturbed first as the table would be (element index row·width + j of
    // tensor `tensor`). With `resume`, the element is read from out itself (gathered by an
    // earlier launch with the terms before these) and written back there.
    \#(ForwardKernels.gatherRows.declaration) {
        int n = blockIdx.x;
        if (n >= count) return;
        u64 row = (u64)indices[n];
        for (int j = threadIdx.x; j < width; j += blockDim.x) {
            float v = resume ? out[(u64)n * width + j] : table[row * width + j];
            for (int k = 0; k < terms.count; ++k)
                v = __fadd_rn(v, __fmul_rn(terms.term[k].coefficient, zo_noise(kind, terms.term[k].seed, tensor, row * width + j)));
            float *target = out + (u64)n * width + j;
            *target = accumulate ? __fadd_rn(*target, v) : v;
        }
    }

    // out[m, n] += bias[n], then ReLU when asked.
    \#(ForwardKernels.biasActivation.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < m * n; i += (u64)gridDim.x * blockDim.x) {
            float v = out[i];
            if (bias) v = __fadd_rn(v, bias[i % n]);
            if (relu) v = fmaxf(v, 0.0f);
            out[i] = v;
        }
    }

    // One row per block: (x − mean)/sqrt(var + eps) · weight + bias.
    \#(ForwardKernels.layerNorm.declaration) {
        __shared__ float shared[ZO_THREADS];
        const float *row = x + (u64)blockIdx.x * channels;
        float *target = out + (u64)blockIdx.x * channels;
        float sum = 0.0f;
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) sum += row[i];
        float mean = zo_block_sum(sum, shared) / channels;
        float squares = 0.0f;
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) { float d = row[i] - mean; squares += d * d; }
        float rstd = 1.0f / sqrtf(zo_block_sum(squares, shared) / channels + eps);
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) {
            float v = (row[i] - mean) * rstd;
            if (weight) v = v * weight[i];
            if (bias) v = v + bias[i];
            target[i] = v;
        }
    }

    // One row per block: (weight_offset + weight) · x / sqrt(mean(x²) + eps).
    \#(ForwardKernels.rmsNorm.declaration) {
        __shared__ float shared[ZO_THREADS];
        const float *row = x + (u64)blockIdx.x * channels;
        float squares = 0.0f;
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) squares += row[i] * row[i];
        float scale = 1.0f / sqrtf(zo_block_sum(squares, shared) / channels + eps);
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS)
            out[(u64)blockIdx.x * channels + i] = (weight_offset + weight[i]) * (row[i] * scale);
    }

    // Rotates halves of each head in place: (a, b) → (a·cos − b·sin, b·cos + a·sin), the
    // angles of row r at table[positions[r]·HS] (cos in the first half, sin in the second);
    // with `inverse`, by the opposite angle (the backward pass: −sin, exactly).
    \#(ForwardKernels.rotary.declaration) {
        int r = blockIdx.x, half = head_size / 2;
        const float *angles = table + (u64)positions[r] * head_size;
        for (int i = threadIdx.x; i < heads * half; i += blockDim.x) {
            int head = i / half, j = i % half;
            float *h = x + (u64)r * row_stride + head * head_size;
            float a = h[j], b = h[j + half], c = angles[j], s = inverse ? -angles[j + half] : angles[j + half];
            h[j] = a * c - b * s;
            h[j + half] = b * c + a * s;
        }
    }

    // out[r, j] = act(gate) · up with gate = gate_up[r, j], up = gate_up[r, F + j]; act is silu
    // (function 0) or PyTorch's tanh-approximated GELU 0.5·x·(1 + tanh(β·(x + κ·x³))) (1).
    \#(ForwardKernels.gated.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < rows * width; i += (u64)gridDim.x * blockDim.x) {
            u64 r = i / width; int j = (int)(i % width);
            float g = gate_up[r * 2 * width + j], up = gate_up[r * 2 * width + width + j];
            out[i] = function == 0 ? g / (1.0f + expf(-g)) * up
                                   : 0.5f * g * (1.0f + tanhf(ZO_GELU_BETA * (g + ZO_GELU_KAPPA * (g * g * g)))) * up;
        }
    }

    // buffer[i] ·= factor.
    \#(ForwardKernels.scale.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x)
            buffer[i] = buffer[i] * factor;
    }

    // destination[i] += source[i].
    \#(ForwardKernels.add.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x)
            destination[i] = destination[i] + source[i];
    }

    // buffer[i] = tanh(buffer[i] / cap) · cap.
    \#(ForwardKernels.softcap.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x)
            buffer[i] = tanhf(buffer[i] / cap) * cap;
    }

    \#(ForwardKernels.copyRows.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (u64)rows * width; i += (u64)gridDim.x * blockDim.x) {
            u64 r = i / width; int j = (int)(i % width);
            destination[r * destination_stride + j] = source[r * source_stride + j];
        }
    }

    // Causal, key-masked attention; one block per (query i, head h, sequence b). The query at
    // position t = keys − queries + i sees keys first ≤ s ≤ t with key_mask[s] ≠ 0 (first =
    // t − window + 1 with a sliding window, else 0); a query with none gives zeros. With
    // softcap c > 0, each scaled score s becomes tanh(s / c) · c. Keys go by
    // tiles of ZO_KEY_TILE from the first visible one with an online softmax (running
    // maximum m, sum l, and each output channel rescaled by exp(m_old − m_new)), so any number
    // of keys fits the block's shared memory; with one tile this is the plain softmax. Thread
    // j owns output channels j and j + 256 (HS ≤ 512).
    #define ZO_KEY_TILE 1024
    \#(ForwardKernels.attention.declaration) {
        __shared__ float scores[ZO_KEY_TILE];
        __shared__ float shared[ZO_THREADS];
        int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
        int t = keys - queries + i;
        int kv_column = (h / (heads / kv_heads)) * head_size;
        const float *query = q + ((u64)b * queries + i) * query_stride + h * head_size;
        const float *key_base = k + (u64)b * capacity * kv_stride + kv_column;
        const float *value_base = v + (u64)b * capacity * kv_stride + kv_column;
        const int *mask = key_mask + (u64)b * capacity;
        float m = -INFINITY, l = 0.0f, acc[2] = {0.0f, 0.0f};
        int first = window > 0 ? max(0, t - window + 1) : 0;
        for (int start = first; start <= t; start += ZO_KEY_TILE) {
            int end = min(t + 1, start + ZO_KEY_TILE);
            float best = -INFINITY;
            for (int s = start + threadIdx.x; s < end; s += ZO_THREADS) {
                float score = -INFINITY;
                if (mask[s] != 0) {
                    float dot = 0.0f;
                    for (int d = 0; d < head_size; ++d) dot += (query[d] * scale) * key_base[(u64)s * kv_stride + d];
                    score = softcap > 0.0f ? tanhf(dot / softcap) * softcap : dot;
                }
                scores[s - start] = score;
                best = fmaxf(best, score);
            }
            best = zo_block_max(best, shared);
            if (best == -INFINITY) continue;  // no visible key in this tile
            float next = fmaxf(m, best), correction = expf(m - next);
            float total = 0.0f;
            for (int s = start + threadIdx.x; s < end; s += ZO_THREADS) {
                float e = scores[s - start] == -INFINITY ? 0.0f : expf(scores[s - start] - next);
                scores[s - start] = e;
                total += e;
            }
            l = l * correction + zo_block_sum(total, shared);
            for (int c = 0; c < 2; ++c) {
                int d = threadIdx.x + c * ZO_THREADS;
                if (d >= head_size) break;
                float sum = acc[c] * correction;
                for (int s = start; s < end; ++s) sum += scores[s - start] * value_base[(u64)s * kv_stride + d];
                acc[c] = sum;
            }
            m = next;
            __syncthreads();  // before the next tile overwrites the scores
        }
        float *o = out + ((u64)b * queries + i) * heads * head_size + h * head_size;
        float inverse = m == -INFINITY ? 0.0f : 1.0f / l;
        for (int c = 0; c < 2; ++c) {
            int d = threadIdx.x + c * ZO_THREADS;
            if (d < head_size) o[d] = acc[c] * inverse;
        }
    }

    // losses[r] = log Σ exp(logits[r]) − logits[r, target] (0 where the target is < 0).
    \#(ForwardKernels.crossEntropy.declaration) {
        __shared__ float shared[ZO_THREADS];
        const float *row = logits + (u64)blockIdx.x * vocab;
        int target = targets[blockIdx.x];
        float best = -INFINITY;
        for (int i = threadIdx.x; i < vocab; i += ZO_THREADS) best = fmaxf(best, row[i]);
        best = zo_block_max(best, shared);
        float sum = 0.0f;
        for (int i = threadIdx.x; i < vocab; i += ZO_THREADS) sum += expf(row[i] - best);
        sum = zo_block_sum(sum, shared);
        if (threadIdx.x == 0) losses[blockIdx.x] = target < 0 ? 0.0f : logf(sum) + best - row[target];
    }

    // out[r] = the index of the first maximum of logits[r].
    \#(ForwardKernels.argmax.declaration) {
        __shared__ float best_value[ZO_THREADS];
        __shared__ int best_index[ZO_THREADS];
        const float *row = logits + (u64)blockIdx.x * vocab;
        float value = -INFINITY; int index = 0x7FFFFFFF;
        for (int i = threadIdx.x; i < vocab; i += ZO_THREADS)
            if (row[i] > value) { value = row[i]; index = i; }
        best_value[threadIdx.x] = value; best_index[threadIdx.x] = index;
        __syncthreads();
        for (int stride = ZO_THREADS / 2; stride > 0; stride /= 2) {
            if (threadIdx.x < stride) {
                float other = best_value[threadIdx.x + stride]; int at = best_index[threadIdx.x + stride];
                if (other > best_value[threadIdx.x] || (other == best_value[threadIdx.x] && at < best_index[threadIdx.x])) {
                    best_value[threadIdx.x] = other; best_index[threadIdx.x] = at;
                }
            }
            __syncthreads();
        }
        if (threadIdx.x == 0) out[blockIdx.x] = best_index[0] == 0x7FFFFFFF ? 0 : best_index[0];
    }
    """#, entryPoints: ForwardKernels.names)
}

/// The forward source's kernels.
enum ForwardKernels {
    static let gatherRows = KernelSignature<In<Float>, Int32, In<Int32>, Int32, Out<Float>, Int32, KernelTerms, UInt32, Int32, Int32>(
        "zo_gather_rows", "table", "width", "indices", "count", "out", "accumulate", "terms", "tensor", "kind", "resume")
    static let biasActivation = KernelSignature<Out<Float>, In<Float>, UInt64, Int32, Int32>(
        "zo_bias_activation", "out", "bias", "m", "n", "relu")
    static let layerNorm = KernelSignature<In<Float>, In<Float>, In<Float>, Out<Float>, Int32, Float>(
        "zo_layer_norm", "x", "weight", "bias", "out", "channels", "eps")
    static let rmsNorm = KernelSignature<In<Float>, In<Float>, Float, Out<Float>, Int32, Float>(
        "zo_rms_norm", "x", "weight", "weight_offset", "out", "channels", "eps")
    static let rotary = KernelSignature<Out<Float>, In<Int32>, In<Float>, Int32, Int32, Int32, Int32>(
        "zo_rotary", "x", "positions", "table", "heads", "head_size", "row_stride", "inverse")
    static let gated = KernelSignature<In<Float>, Out<Float>, UInt64, Int32, Int32>(
        "zo_gated", "gate_up", "out", "rows", "width", "function")
    static let scale = KernelSignature<Out<Float>, UInt64, Float>("zo_scale", "buffer", "count", "factor")
    static let add = KernelSignature<In<Float>, Out<Float>, UInt64>("zo_add", "source", "destination", "count")
    static let softcap = KernelSignature<Out<Float>, UInt64, Float>("zo_softcap", "buffer", "count", "cap")
    static let copyRows = KernelSignature<In<Float>, Int32, Out<Float>, Int32, Int32, Int32>(
        "zo_copy_rows", "source", "source_stride", "destination", "destination_stride", "rows", "width")
    static let attention = KernelSignature<In<Float>, In<Float>, In<Float>, In<Int32>, Out<Float>, Int32, Int32, Int32, Int32, Int32,
                                           Int32, Int32, Int32, Float, Int32, Float>(
        "zo_attention", "q", "k", "v", "key_mask", "out", "queries", "keys", "capacity", "heads", "kv_heads", "head_size",
        "query_stride", "kv_stride", "scale", "window", "softcap")
    static let crossEntropy = KernelSignature<In<Float>, In<Int32>, Out<Float>, Int32>(
        "zo_cross_entropy", "logits", "targets", "losses", "vocab")
    static let argmax = KernelSignature<In<Float>, Out<Int32>, Int32>(
        "zo_argmax", "logits", "out", "vocab")

    static let names = [gatherRows.name, biasActivation.name, layerNorm.name, rmsNorm.name, rotary.name, gated.name, scale.name, add.name,
                        softcap.name, copyRows.name, attention.name, crossEntropy.name, argmax.name]
}
