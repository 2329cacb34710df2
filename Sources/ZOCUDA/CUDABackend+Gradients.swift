import CCUDA
import ZOCore

/// The backward operations on CUDA: cuBLAS for the GEMMs, the kernels of `KernelSource.backward`
/// for the rest (see there for their order of operations).
extension CUDABackend: GradientBackend {
    public func gemm(a: DeviceBuffer, b: DeviceBuffer, out: DeviceBuffer, m: Int, n: Int, k: Int,
                     transposeA: Bool, transposeB: Bool, accumulate: Bool) {
        // Row-major out[m, n] = op(a) · op(b) is column-major outᵀ[n, m] = op(b)ᵀ · op(a)ᵀ, where
        // a row-major matrix is its own transpose column-major.
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        let status = blas.cublasGemmEx(blasHandle, transposeB ? 1 : 0, transposeA ? 1 : 0, Int32(n), Int32(m), Int32(k), &alpha,
                                       UnsafeRawPointer(bitPattern: UInt(address(b))), 0, Int32(transposeB ? k : n),
                                       UnsafeRawPointer(bitPattern: UInt(address(a))), 0, Int32(transposeA ? m : k), &beta,
                                       UnsafeMutableRawPointer(bitPattern: UInt(address(out))), 0, Int32(n),
                                       precision.computeType, -1)
        if status != 0 { record(.device("cublasGemmEx (backward): status \(status)")) }
    }

    public func accumulateColumnSums(_ x: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int) {
        launch(BackwardKernels.columnSums, grid: (blocks(width), 1, 1), block: 256, In(x), Out(out), Int32(rows), Int32(width))
    }

    public func zero(_ buffer: DeviceBuffer, count: Int) {
        note(driver.cuMemsetD8Async(address(buffer), 0, count * 4, stream(computeStream)), "cuMemsetD8Async")
    }

    public func reluBackward(gradient: DeviceBuffer, output: DeviceBuffer, count: Int) {
        launch(BackwardKernels.reluBackward, grid: (blocks(count), 1, 1), block: 256, Out(gradient), In(output), UInt64(count))
    }

    public func layerNormBackward(x: DeviceBuffer, weight: DeviceBuffer?, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                                  gradWeight: DeviceBuffer?, gradBias: DeviceBuffer?, rows: Int, channels: Int, eps: Float) {
        launch(BackwardKernels.normBackward, grid: (rows, 1, 1), block: 256,
               In(x), In(weight), Float(0), In(gradOut), Out(gradX), Int32(channels), eps, Int32(0))
        guard gradWeight != nil || gradBias != nil else { return }
        launch(BackwardKernels.normWeightBackward, grid: (1, 1, 1), block: 256,
               In(x), In(gradOut), Out(gradWeight), Out(gradBias), Int32(rows), Int32(channels), eps, Int32(0))
    }

    public func rmsNormBackward(x: DeviceBuffer, weight: DeviceBuffer, weightOffset: Float, gradOut: DeviceBuffer, gradX: DeviceBuffer,
                                gradWeight: DeviceBuffer, rows: Int, channels: Int, eps: Float) {
        launch(BackwardKernels.normBackward, grid: (rows, 1, 1), block: 256,
               In(x), In(weight), weightOffset, In(gradOut), Out(gradX), Int32(channels), eps, Int32(1))
        launch(BackwardKernels.normWeightBackward, grid: (1, 1, 1), block: 256,
               In(x), In(gradOut), Out(gradWeight), Out(nil), Int32(rows), Int32(channels), eps, Int32(1))
    }

    public func rotaryBackward(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                               rowStride: Int) {
        launch(ForwardKernels.rotary, grid: (rows, 1, 1), block: 128,
               Out(x), In(positions), In(table), Int32(heads), Int32(headSize), Int32(rowStride), Int32(1))
    }

    public func gatedActivationBackward(_ function: GateFunction, gateUp: DeviceBuffer, gradOut: DeviceBuffer, gradGateUp: DeviceBuffer,
                                        rows: Int, width: Int) {
        launch(BackwardKernels.gatedBackward, grid: (blocks(rows * width), 1, 1), block: 256,
               In(gateUp), In(gradOut), Out(gradGateUp), UInt64(rows), Int32(width), Self.functionCode(function))
    }

    public func softcapBackward(gradient: DeviceBuffer, output: DeviceBuffer, count: Int, cap: Float) {
        launch(BackwardKernels.softcapBackward, grid: (blocks(count), 1, 1), block: 256, Out(gradient), In(output), UInt64(count), cap)
    }

    /// The most tokens `attentionBackward` takes: two floats a token of shared memory (three
    /// with a soft cap) beside the kernel's 1 KiB of static shared memory, within the default 48 KiB.
    public static func attentionBackwardTokenLimit(softcapped: Bool) -> Int { (48 * 1024 - 1024) / (softcapped ? 12 : 8) }

    public func attentionBackward(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, gradOut: DeviceBuffer,
                                  gradQ: DeviceBuffer, gradK: DeviceBuffer, gradV: DeviceBuffer, shape: AttentionShape) {
        precondition(shape.queries == shape.keys && shape.capacity == shape.keys, "attention backward runs without a cache")
        let limit = Self.attentionBackwardTokenLimit(softcapped: shape.softcap > 0)
        guard shape.keys <= limit else {
            return record(.invalidArgument("attention backward over \(shape.keys) tokens (at most \(limit))"))
        }
        launch(BackwardKernels.attentionBackward, grid: (shape.kvHeads, shape.batch, 1), block: 256,
               sharedBytes: (shape.softcap > 0 ? 12 : 8) * shape.keys,
               In(q), In(k), In(v), In(keyMask), In(gradOut), Out(gradQ), Out(gradK), Out(gradV), Int32(shape.keys),
               Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headSize), Int32(shape.queryStride), Int32(shape.kvStride),
               shape.scale, Int32(shape.window), shape.softcap)
    }

    public func crossEntropyBackward(logits: DeviceBuffer, targets: DeviceBuffer, weights: DeviceBuffer, gradLogits: DeviceBuffer,
                                     rows: Int, vocab: Int) {
        launch(BackwardKernels.crossEntropyBackward, grid: (rows, 1, 1), block: 256,
               In(logits), In(targets), In(weights), Out(gradLogits), Int32(vocab))
    }

    public func scatterAddRows(_ values: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int, table: DeviceBuffer,
                               skipping: Int32?) {
        launch(BackwardKernels.scatterAddRows, grid: (blocks(width), 1, 1), block: 256,
               In(values), Int32(width), In(indices), Int32(count), Out(table), Int32(skipping == nil ? 0 : 1), skipping ?? 0)
    }

    public func scatterAdd(_ values: DeviceBuffer, indices: DeviceBuffer, count: Int, into buffer: DeviceBuffer) {
        launch(BackwardKernels.scatterAdd, grid: (1, 1, 1), block: 32, In(values), In(indices), Int32(count), Out(buffer))
    }

    public func optimizerStep(_ rule: FirstOrderRule, parameters: DeviceBuffer, gradients: DeviceBuffer, state: [DeviceBuffer],
                              count: Int, step: Int, learningRate: Float, decays: Bool) {
        precondition(state.count == rule.stateCount, "\(rule) keeps \(rule.stateCount) state buffers, got \(state.count)")
        let first = state.first, second = state.dropFirst().first
        let code: Int32, decay: Float, beta1: Float, beta2: Float, epsilon: Float
        switch rule {
        case .sgd(let momentum, let weightDecay): (code, decay, beta1, beta2, epsilon) = (0, weightDecay, momentum, 0, 0)
        case .adamW(let b1, let b2, let e, let weightDecay): (code, decay, beta1, beta2, epsilon) = (1, weightDecay, b1, b2, e)
        }
        let (correction1, correction2) = rule.biasCorrections(step: step)
        launch(BackwardKernels.optimizerStep, grid: (blocks(count), 1, 1), block: 256,
               Out(parameters), In(gradients), Out(first), Out(second), UInt64(count), code, Int32(decays ? 1 : 0), learningRate,
               decay, beta1, beta2, epsilon, correction1, correction2)
    }
}
