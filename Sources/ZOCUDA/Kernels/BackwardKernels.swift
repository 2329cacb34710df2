extension KernelSource {
    /// The backward pass's kernels behind `GradientBackend` (GEMMs are cuBLAS). Sums that the
    /// CPU backend accumulates row after row (bias, norm-weight and embedding gradients) run
    /// one thread per column over the rows in order, so they add in the CPU's order; reductions
    /// within a row use one block of 256 threads. Attention runs one block per (sequence, KV
    /// head), its query heads and queries in order, threads over the head's columns, so each
    /// dK and dV column has one writer. The optimizer steps follow `FirstOrderRule.update`
    /// operation by operation (bias corrections from the host): bit for bit the CPU's.
    public static let backward = KernelSource(name: "backward", code: noiseFunctions + reductionFunctions + #"""

    // out[j] += Σ_r x[r, j], rows in order.
    \#(BackwardKernels.columnSums.declaration) {
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < width; j += gridDim.x * blockDim.x) {
            float total = out[j];
            for (int r = 0; r < rows; ++r) total = __fadd_rn(total, x[(u64)r * width + j]);
            out[j] = total;
        }
    }

    // gradient[i] = 0 where output[i] ≤ 0.
    \#(BackwardKernels.reluBackward.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x)
            if (output[i] <= 0.0f) gradient[i] = 0.0f;
    }

    // The mean and 1/std of row `x` (layer norm) or, with `rms`, 0 and 1/sqrt(mean(x²) + eps).
    __device__ void zo_row_statistics(const float *x, int channels, float eps, int rms, float *shared, float *mean, float *rstd) {
        float sum = 0.0f;
        if (!rms) for (int i = threadIdx.x; i < channels; i += ZO_THREADS) sum += x[i];
        *mean = rms ? 0.0f : zo_block_sum(sum, shared) / channels;
        float squares = 0.0f;
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) { float d = x[i] - *mean; squares += d * d; }
        *rstd = 1.0f / sqrtf(zo_block_sum(squares, shared) / channels + eps);
    }

    // One row per block: gradX += rstd·(g·w − mean(g·w) − x̂·mean(g·w·x̂)) (layer norm), or with
    // `rms` gradX += r·(g·w − x̂·mean(g·w·x̂)) (RMSNorm, x̂ = x·r); w is weight_offset + weight.
    \#(BackwardKernels.normBackward.declaration) {
        __shared__ float shared[ZO_THREADS];
        const float *row = x + (u64)blockIdx.x * channels, *g = grad_out + (u64)blockIdx.x * channels;
        float *gx = grad_x + (u64)blockIdx.x * channels;
        float mean, rstd;
        zo_row_statistics(row, channels, eps, rms, shared, &mean, &rstd);
        float sumG = 0.0f, sumGX = 0.0f;
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) {
            float gw = g[i] * (weight ? weight_offset + weight[i] : 1.0f);
            sumG += gw;
            sumGX += gw * ((row[i] - mean) * rstd);
        }
        float meanG = rms ? 0.0f : zo_block_sum(sumG, shared) / channels;
        float meanGX = zo_block_sum(sumGX, shared) / channels;
        for (int i = threadIdx.x; i < channels; i += ZO_THREADS) {
            float normalized = (row[i] - mean) * rstd;
            gx[i] += rstd * (g[i] * (weight ? weight_offset + weight[i] : 1.0f) - meanG - normalized * meanGX);
        }
    }

    // One block, rows in order: grad_weight += g·x̂ and grad_bias += g (either may be null).
    \#(BackwardKernels.normWeightBackward.declaration) {
        __shared__ float shared[ZO_THREADS];
        for (int r = 0; r < rows; ++r) {
            const float *row = x + (u64)r * channels, *g = grad_out + (u64)r * channels;
            float mean, rstd;
            zo_row_statistics(row, channels, eps, rms, shared, &mean, &rstd);
            for (int i = threadIdx.x; i < channels; i += ZO_THREADS) {
                if (grad_weight) grad_weight[i] += g[i] * ((row[i] - mean) * rstd);
                if (grad_bias) grad_bias[i] += g[i];
            }
        }
    }

    // silu (function 0): d gate = g·up·s·(1 + gate·(1 − s)), d up = g·gate·s with s = σ(gate).
    // GELU-tanh (1): with t = tanh(β·(x + κ·x³)), d gate = g·up·(0.5·(1 + t) + 0.5·x·(1 − t²)·β·(1 + 3κ·x²)),
    // d up = g·0.5·x·(1 + t).
    \#(BackwardKernels.gatedBackward.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < rows * width; i += (u64)gridDim.x * blockDim.x) {
            u64 r = i / width; int j = (int)(i % width);
            float gate = gate_up[r * 2 * width + j], up = gate_up[r * 2 * width + width + j], g = grad_out[i];
            if (function == 0) {
                float s = 1.0f / (1.0f + expf(-gate));
                grad_gate_up[r * 2 * width + j] = g * up * s * (1.0f + gate * (1.0f - s));
                grad_gate_up[r * 2 * width + width + j] = g * gate * s;
            } else {
                float square = gate * gate;
                float t = tanhf(ZO_GELU_BETA * (gate + ZO_GELU_KAPPA * (square * gate)));
                float left = 0.5f * gate, right = 1.0f + t;
                float derivative = 0.5f * right + left * (1.0f - t * t) * (ZO_GELU_BETA * (1.0f + 3.0f * ZO_GELU_KAPPA * square));
                grad_gate_up[r * 2 * width + j] = g * up * derivative;
                grad_gate_up[r * 2 * width + width + j] = g * (left * right);
            }
        }
    }

    // gradient[i] ·= 1 − (output[i] / cap)² (the soft cap's derivative from its output).
    \#(BackwardKernels.softcapBackward.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
            float t = output[i] / cap;
            gradient[i] = gradient[i] * (1.0f - t * t);
        }
    }

    // One block per (kv head, sequence); queries t of each query head in order. Scratch in
    // dynamic shared memory: probabilities [T], score gradients [T], and with a soft cap c the
    // cap's derivatives 1 − tanh² [T].
    \#(BackwardKernels.attentionBackward.declaration) {
        extern __shared__ float scratch[];
        __shared__ float shared[ZO_THREADS];
        float *p = scratch, *dp = scratch + tokens, *slope = scratch + 2 * tokens;
        int kv_head = blockIdx.x, b = blockIdx.y, group = heads / kv_heads;
        int kv_column = kv_head * head_size;
        const float *kb = k + (u64)b * tokens * kv_stride + kv_column, *vb = v + (u64)b * tokens * kv_stride + kv_column;
        float *dk = grad_k + (u64)b * tokens * kv_stride + kv_column, *dv = grad_v + (u64)b * tokens * kv_stride + kv_column;
        const int *mask = key_mask + (u64)b * tokens;
        for (int head = kv_head * group; head < (kv_head + 1) * group; ++head) {
            for (int t = 0; t < tokens; ++t) {
                const float *query = q + ((u64)b * tokens + t) * query_stride + head * head_size;
                const float *g = grad_out + ((u64)b * tokens + t) * heads * head_size + head * head_size;
                float best = -INFINITY;
                int first = window > 0 ? max(0, t - window + 1) : 0;
                for (int s = threadIdx.x; s <= t; s += ZO_THREADS) {
                    float score = -INFINITY;
                    if (mask[s] != 0 && s >= first) {
                        float dot = 0.0f;
                        for (int d = 0; d < head_size; ++d) dot += query[d] * kb[(u64)s * kv_stride + d];
                        score = dot * scale;
                        if (softcap > 0.0f) {
                            score = tanhf(score / softcap) * softcap;
                            float ratio = score / softcap;
                            slope[s] = 1.0f - ratio * ratio;
                        }
                    }
                    p[s] = score;
                    best = fmaxf(best, score);
                }
                best = zo_block_max(best, shared);
                if (best == -INFINITY) continue;  // no visible key: output 0, no gradient
                float total = 0.0f;
                for (int s = threadIdx.x; s <= t; s += ZO_THREADS) {
                    p[s] = mask[s] != 0 && s >= first ? expf(p[s] - best) : 0.0f;
                    total += p[s];
                }
                total = zo_block_sum(total, shared);
                float weighted = 0.0f;
                for (int s = threadIdx.x; s <= t; s += ZO_THREADS) {
                    p[s] = p[s] / total;
                    float dot = 0.0f;
                    if (p[s] != 0.0f) for (int d = 0; d < head_size; ++d) dot += g[d] * vb[(u64)s * kv_stride + d];
                    dp[s] = dot;
                    weighted += p[s] * dot;
                }
                weighted = zo_block_sum(weighted, shared);
                // dS_s = p_s·(dP_s − D)·scale; dq += Σ_s dS_s·k_s; dk_s += dS_s·q; dv_s += p_s·g.
                float *dq = grad_q + ((u64)b * tokens + t) * query_stride + head * head_size;
                for (int d = threadIdx.x; d < head_size; d += ZO_THREADS) {
                    float acc = dq[d];
                    for (int s = 0; s <= t; ++s) {
                        if (p[s] == 0.0f) continue;
                        float d_score = p[s] * (dp[s] - weighted);
                        if (softcap > 0.0f) d_score = d_score * slope[s];
                        d_score = d_score * scale;
                        acc += d_score * kb[(u64)s * kv_stride + d];
                        dk[(u64)s * kv_stride + d] += d_score * query[d];
                        dv[(u64)s * kv_stride + d] += p[s] * g[d];
                    }
                    dq[d] = acc;
                }
                __syncthreads();
            }
        }
    }

    // One row per block: grad = weight·(softmax(logits) − onehot(target)); 0 for a negative
    // target or a zero weight.
    \#(BackwardKernels.crossEntropyBackward.declaration) {
        __shared__ float shared[ZO_THREADS];
        const float *row = logits + (u64)blockIdx.x * vocab;
        float *out = grad_logits + (u64)blockIdx.x * vocab;
        int target = targets[blockIdx.x];
        float weight = weights[blockIdx.x];
        if (target < 0 || weight == 0.0f) {
            for (int i = threadIdx.x; i < vocab; i += ZO_THREADS) out[i] = 0.0f;
            return;
        }
        float best = -INFINITY;
        for (int i = threadIdx.x; i < vocab; i += ZO_THREADS) best = fmaxf(best, row[i]);
        best = zo_block_max(best, shared);
        float sum = 0.0f;
        for (int i = threadIdx.x; i < vocab; i += ZO_THREADS) sum += expf(row[i] - best);
        float scale = weight / zo_block_sum(sum, shared);
        for (int i = threadIdx.x; i < vocab; i += ZO_THREADS)
            out[i] = expf(row[i] - best) * scale - (i == target ? weight : 0.0f);
    }

    // table[indices[n], j] += values[n, j], n in order (one thread per column j); rows whose
    // index is `skipping` (when `skips`) are left out.
    \#(BackwardKernels.scatterAddRows.declaration) {
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < width; j += gridDim.x * blockDim.x) {
            for (int n = 0; n < count; ++n) {
                if (skips && indices[n] == skipping) continue;
                table[(u64)indices[n] * width + j] += values[(u64)n * width + j];
            }
        }
    }

    // buffer[indices[n]] += values[n], n in order (one thread).
    \#(BackwardKernels.scatterAdd.declaration) {
        if (blockIdx.x != 0 || threadIdx.x != 0) return;
        for (int n = 0; n < count; ++n) buffer[indices[n]] += values[n];
    }

    // FirstOrderRule.update for each parameter: rule 0 SGD (momentum in `first` when non-null),
    // 1 AdamW (moments in `first`, `second`; corrections 1 − β^step from the host).
    \#(BackwardKernels.optimizerStep.declaration) {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
            float theta = parameters[i], g = gradients[i];
            if (rule == 0) {
                float direction = decays ? g + decay * theta : g;
                if (first) { direction = beta1 * first[i] + direction; first[i] = direction; }
                theta = theta - learning_rate * direction;
            } else {
                float m = beta1 * first[i] + (1.0f - beta1) * g;
                float v = beta2 * second[i] + (1.0f - beta2) * g * g;
                first[i] = m;
                second[i] = v;
                if (decays) theta = theta - learning_rate * decay * theta;
                theta = theta - learning_rate * (m / correction1) / (sqrtf(v / correction2) + epsilon);
            }
            parameters[i] = theta;
        }
    }
    """#, entryPoints: BackwardKernels.names)
}

/// The backward source's kernels.
enum BackwardKernels {
    static let columnSums = KernelSignature<In<Float>, Out<Float>, Int32, Int32>("zo_column_sums", "x", "out", "rows", "width")
    static let reluBackward = KernelSignature<Out<Float>, In<Float>, UInt64>("zo_relu_backward", "gradient", "output", "count")
    static let normBackward = KernelSignature<In<Float>, In<Float>, Float, In<Float>, Out<Float>, Int32, Float, Int32>(
        "zo_norm_backward", "x", "weight", "weight_offset", "grad_out", "grad_x", "channels", "eps", "rms")
    static let normWeightBackward = KernelSignature<In<Float>, In<Float>, Out<Float>, Out<Float>, Int32, Int32, Float, Int32>(
        "zo_norm_weight_backward", "x", "grad_out", "grad_weight", "grad_bias", "rows", "channels", "eps", "rms")
    static let gatedBackward = KernelSignature<In<Float>, In<Float>, Out<Float>, UInt64, Int32, Int32>(
        "zo_gated_backward", "gate_up", "grad_out", "grad_gate_up", "rows", "width", "function")
    static let softcapBackward = KernelSignature<Out<Float>, In<Float>, UInt64, Float>(
        "zo_softcap_backward", "gradient", "output", "count", "cap")
    static let attentionBackward = KernelSignature<In<Float>, In<Float>, In<Float>, In<Int32>, In<Float>, Out<Float>, Out<Float>,
                                                   Out<Float>, Int32, Int32, Int32, Int32, Int32, Int32, Float, Int32, Float>(
        "zo_attention_backward", "q", "k", "v", "key_mask", "grad_out", "grad_q", "grad_k", "grad_v", "tokens", "heads",
        "kv_heads", "head_size", "query_stride", "kv_stride", "scale", "window", "softcap")
    static let crossEntropyBackward = KernelSignature<In<Float>, In<Int32>, In<Float>, Out<Float>, Int32>(
        "zo_cross_entropy_backward", "logits", "targets", "weights", "grad_logits", "vocab")
    static let scatterAddRows = KernelSignature<In<Float>, Int32, In<Int32>, Int32, Out<Float>, Int32, Int32>(
        "zo_scatter_add_rows", "values", "width", "indices", "count", "table", "skips", "skipping")
    static let scatterAdd = KernelSignature<In<Float>, In<Int32>, Int32, Out<Float>>("zo_scatter_add", "values", "indices", "count", "buffer")
    static let optimizerStep = KernelSignature<Out<Float>, In<Float>, Out<Float>, Out<Float>, UInt64, Int32, Int32, Float, Float, Float,
                                               Float, Float, Float, Float>(
        "zo_optimizer_step", "parameters", "gradients", "first", "second", "count", "rule", "decays", "learning_rate", "decay",
        "beta1", "beta2", "epsilon", "correction1", "correction2")

    static let names = [columnSums.name, reluBackward.name, normBackward.name, normWeightBackward.name, gatedBackward.name, softcapBackward.name,
                        attentionBackward.name, crossEntropyBackward.name, scatterAddRows.name, scatterAdd.name, optimizerStep.name]
}
