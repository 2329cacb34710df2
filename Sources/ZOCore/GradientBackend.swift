/// The operations backpropagation needs, for backends that offer first-order training (the
/// deepest blocks and the head of a hybrid ZO/FO run, or a full first-order baseline).
///
/// Conventions as `Backend`: Float32 buffers from the arena, compute-stream order, shapes
/// in B, T, C, NH, HS, V. A gradient named `grad…` is dL/d(that tensor). Parameter
/// gradients are always accumulated (`+=`), so two passes' gradients sum in one buffer.
public protocol GradientBackend: Backend {
    /// out [M, N] (+)= op(a) · op(b), op(a) [M, K] and op(b) [K, N]; `a` is stored [M, K]
    /// (or [K, M] when `transposeA`), `b` [K, N] (or [N, K] when `transposeB`).
    func gemm(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, m: Int, n: Int, k: Int,
              transposeA: Bool, transposeB: Bool, accumulate: Bool)

    /// out [N] += Σ over rows of x [rows, N] (a bias gradient).
    func accumulateColumnSums(_ x: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int)

    /// buffer [count] = 0.
    func zero(_ buffer: DeviceBuffer, count: Int)

    /// gradient [count] = 0 where output [count] ≤ 0 (ReLU's backward, from its output).
    func reluBackward(gradient: DeviceBuffer, output: DeviceBuffer, count: Int)

    /// Backward of `Backend.layerNorm` for x [rows, C]: gradX += dL/dx; gradWeight [C] and
    /// gradBias [C] += their gradients (nil when the norm has none).
    func layerNormBackward(x: DeviceBuffer, weight: DeviceBuffer?, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                           gradWeight: DeviceBuffer?, gradBias: DeviceBuffer?, rows: Int, channels: Int, eps: Float)

    /// Backward of `Backend.rmsNorm` for x [rows, C]: gradX += dL/dx; gradWeight [C] += its gradient.
    func rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, weightOffset: Float, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                         gradWeight: DeviceBuffer, rows: Int, channels: Int, eps: Float)

    /// Backward of `Backend.rotary` (same arguments): rotates the gradient rows back, in place.
    func rotaryBackward(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                        rowStride: Int)

    /// Backward of `Backend.gatedActivation`: gradGateUp [rows, 2F] = dL/d(gate | up) from
    /// gateUp [rows, 2F] and gradOut [rows, F].
    func gatedActivationBackward(_ function: GateFunction, gateUp: DeviceBuffer, gradOut: DeviceBuffer, gradGateUp: DeviceBuffer,
                                 rows: Int, width: Int)

    /// Backward of `Backend.softcap` from its output: gradient [count] ·= 1 − (output / cap)².
    func softcapBackward(gradient: DeviceBuffer, output: DeviceBuffer, count: Int, cap: Float)

    /// Backward of `Backend.attention` without a cache (Tq = Tk): gradQ, gradK, gradV have the
    /// layouts (and strides) of q, k, v and are accumulated into; gradOut [B, T, NH·HS].
    func attentionBackward(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, gradOut: DeviceBuffer,
                           gradQ: DeviceBuffer, gradK: DeviceBuffer, gradV: DeviceBuffer, shape: AttentionShape)

    /// gradLogits [N, V] = weights[n] · (softmax(logits[n]) − onehot(targets[n])), and 0 for
    /// rows whose target is negative; `weights` is Float32 [N] (dL/d token loss).
    func crossEntropyBackward(logits: DeviceBuffer, targets: DeviceBuffer, weights: DeviceBuffer, gradLogits: DeviceBuffer,
                              rows: Int, vocab: Int)

    /// table [rows, width]: table[indices[n]] += values[n] for n < count (a gather's backward),
    /// leaving out rows whose index is `skipping` (an embedding's padding_idx); `indices` Int32 [count].
    func scatterAddRows(_ values: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int, table: DeviceBuffer, skipping: Int32?)

    /// buffer[indices[n]] += values[n] for n < count (`indices` Int32, `values` Float32).
    func scatterAdd(_ values: DeviceBuffer, indices: DeviceBuffer, count: Int, into buffer: DeviceBuffer)

    /// One optimizer update of `count` parameters from their gradients, with its state
    /// buffers (see `FirstOrderRule`); `decays` applies the rule's weight decay.
    func optimizerStep(_ rule: FirstOrderRule, parameters: DeviceBuffer, gradients: DeviceBuffer, state: [DeviceBuffer],
                       count: Int, step: Int, learningRate: Float, decays: Bool)
}

/// A first-order update rule and its hyperparameters.
public enum FirstOrderRule: Sendable, Equatable, Codable {
    /// v ← μ·v + g (+ wd·θ); θ ← θ − lr·v. State: v.
    case sgd(momentum: Float, weightDecay: Float)
    /// AdamW (Loshchilov & Hutter): m, v moments with bias correction, decoupled decay
    /// θ ← θ − lr·wd·θ. State: m, v.
    case adamW(beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float)

    /// State buffers per parameter buffer (each as large as it).
    public var stateCount: Int {
        switch self {
        case .sgd(let momentum, _): momentum == 0 ? 0 : 1
        case .adamW: 2
        }
    }

    /// AdamW's bias corrections 1 − β₁^step and 1 − β₂^step (1 and 1 for SGD).
    public func biasCorrections(step: Int) -> (Float, Float) {
        guard case .adamW(let beta1, let beta2, _, _) = self else { return (1, 1) }
        return (1 - Float.pow(beta1, step), 1 - Float.pow(beta2, step))
    }

    /// Updates one parameter θ with gradient g and state s (step ≥ 1 counts updates so far,
    /// this one included). The reference arithmetic every backend follows.
    @inline(__always)
    public func update(_ theta: inout Float, gradient g: Float, state: UnsafeMutablePointer<Float>?, state2: UnsafeMutablePointer<Float>?,
                       step: Int, learningRate lr: Float, decays: Bool) {
        switch self {
        case .sgd(let momentum, let weightDecay):
            var direction = decays ? g + weightDecay * theta : g
            if let state {
                direction = momentum * state.pointee + direction
                state.pointee = direction
            }
            theta -= lr * direction
        case .adamW(let beta1, let beta2, let epsilon, let weightDecay):
            let m = beta1 * state!.pointee + (1 - beta1) * g
            let v = beta2 * state2!.pointee + (1 - beta2) * g * g
            state!.pointee = m
            state2!.pointee = v
            let (correction1, correction2) = biasCorrections(step: step)
            if decays { theta -= lr * weightDecay * theta }
            theta -= lr * (m / correction1) / ((v / correction2).squareRoot() + epsilon)
        }
    }
}

extension GradientBackend {
    /// Backward of Llama's RMSNorm (weight offset 0).
    public func rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                                gradWeight: DeviceBuffer, rows: Int, channels: Int, eps: Float) {
        rmsNormBackward(x: x, weight: weight, weightOffset: 0, gradOut: gradOut, gradX: gradX, gradWeight: gradWeight, rows: rows,
                        channels: channels, eps: eps)
    }
}

extension Float {
    /// x^n for a non-negative integer n (by squaring).
    static func pow(_ x: Float, _ n: Int) -> Float {
        var result: Float = 1, base = x, n = n
        while n > 0 {
            if n & 1 == 1 { result *= base }
            base *= base
            n >>= 1
        }
        return result
    }
}
