import CCUDA
import ZOCore

/// `Backend`'s operations on the compute stream: cuBLAS for the linear layers, the kernels of
/// `KernelSource` for the rest.
extension CUDABackend {
    private static func kindCode(_ kind: PerturbationKind) -> Int32 {
        switch kind { case .gaussian: 0; case .rademacher: 1; case .ones: 2 }
    }

    private static func formatCode(_ format: LinkFormat) -> Int32 {
        switch format { case .fp32: 0; case .bf16: 1; case .fp16: 2; case .fp8: 3 }
    }

    public func gatherRows(table: DeviceBuffer, width: Int, indices: DeviceBuffer, count: Int,
                           out: DeviceBuffer, accumulate: Bool, perturbation: RowPerturbation?) {
        let terms = perturbation?.terms ?? []
        guard terms.count <= KernelTerms.capacity || !accumulate else {
            return record(.invalidArgument("gatherRows accumulating with \(terms.count) perturbation terms (at most \(KernelTerms.capacity))"))
        }
        // More terms than a launch carries: the rest in further launches over the gathered rows
        // (each value stored as the float it is, so the result is the same bit for bit).
        for start in stride(from: 0, through: max(0, terms.count - 1), by: KernelTerms.capacity) {
            let chunk = terms[start..<min(terms.count, start + KernelTerms.capacity)]
            launch(ForwardKernels.gatherRows, grid: (count, 1, 1), block: 256,
                   In(table), Int32(width), In(indices), Int32(count), Out(out), Int32(accumulate ? 1 : 0), KernelTerms(chunk),
                   perturbation?.tensor ?? 0, Self.kindCode(perturbation?.kind ?? .gaussian), Int32(start > 0 ? 1 : 0))
        }
    }

    public func linear(x: DeviceBuffer, weight: DeviceBuffer, bias: DeviceBuffer?, out: DeviceBuffer,
                       m: Int, n: Int, k: Int, activation: Activation, accumulate: Bool) {
        // Row-major out[m, n] = x[m, k] · weight[n, k]ᵀ is column-major outᵀ = weightᵀ(op T) · xᵀ.
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        let status = blas.cublasGemmEx(blasHandle, 1, 0, Int32(n), Int32(m), Int32(k), &alpha,
                                       UnsafeRawPointer(bitPattern: UInt(address(weight))), 0 /* R_32F */, Int32(k),
                                       UnsafeRawPointer(bitPattern: UInt(address(x))), 0, Int32(k), &beta,
                                       UnsafeMutableRawPointer(bitPattern: UInt(address(out))), 0, Int32(n),
                                       precision.computeType, -1 /* default algorithm */)
        if status != 0 { record(.device("cublasGemmEx: status \(status)")) }
        guard bias != nil || activation == .relu else { return }
        launch(ForwardKernels.biasActivation, grid: (blocks(m * n), 1, 1), block: 256,
               Out(out), In(bias), UInt64(m), Int32(n), Int32(activation == .relu ? 1 : 0))
    }

    public func layerNorm(x: DeviceBuffer, weight: DeviceBuffer?, bias: DeviceBuffer?, out: DeviceBuffer,
                          rows: Int, channels: Int, eps: Float) {
        launch(ForwardKernels.layerNorm, grid: (rows, 1, 1), block: 256, In(x), In(weight), In(bias), Out(out), Int32(channels), eps)
    }

    public func rmsNorm(x: DeviceBuffer, weight: DeviceBuffer, weightOffset: Float, out: DeviceBuffer, rows: Int, channels: Int,
                        eps: Float) {
        launch(ForwardKernels.rmsNorm, grid: (rows, 1, 1), block: 256, In(x), In(weight), weightOffset, Out(out), Int32(channels), eps)
    }

    public func rotary(x: DeviceBuffer, positions: DeviceBuffer, table: DeviceBuffer, rows: Int, heads: Int, headSize: Int,
                       rowStride: Int) {
        launch(ForwardKernels.rotary, grid: (rows, 1, 1), block: 128,
               Out(x), In(positions), In(table), Int32(heads), Int32(headSize), Int32(rowStride), Int32(0))
    }

    public func gatedActivation(_ function: GateFunction, gateUp: DeviceBuffer, out: DeviceBuffer, rows: Int, width: Int) {
        launch(ForwardKernels.gated, grid: (blocks(rows * width), 1, 1), block: 256, In(gateUp), Out(out), UInt64(rows), Int32(width),
               Self.functionCode(function))
    }

    static func functionCode(_ function: GateFunction) -> Int32 {
        switch function { case .silu: 0; case .geluTanh: 1 }
    }

    public func scale(_ buffer: DeviceBuffer, count: Int, by factor: Float) {
        launch(ForwardKernels.scale, grid: (blocks(count), 1, 1), block: 256, Out(buffer), UInt64(count), factor)
    }

    public func add(_ source: DeviceBuffer, to destination: DeviceBuffer, count: Int) {
        launch(ForwardKernels.add, grid: (blocks(count), 1, 1), block: 256, In(source), Out(destination), UInt64(count))
    }

    public func softcap(_ buffer: DeviceBuffer, count: Int, cap: Float) {
        launch(ForwardKernels.softcap, grid: (blocks(count), 1, 1), block: 256, Out(buffer), UInt64(count), cap)
    }

    public func copyRows(source: DeviceBuffer, sourceStride: Int, destination: DeviceBuffer, destinationStride: Int,
                         rows: Int, width: Int) {
        launch(ForwardKernels.copyRows, grid: (blocks(rows * width), 1, 1), block: 256,
               In(source), Int32(sourceStride), Out(destination), Int32(destinationStride), Int32(rows), Int32(width))
    }

    public func attention(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, keyMask: DeviceBuffer, out: DeviceBuffer,
                          shape: AttentionShape) {
        guard shape.headSize <= 512 else {
            return record(.invalidArgument("attention with a head size of \(shape.headSize) (the kernel takes at most 512)"))
        }
        launch(ForwardKernels.attention, grid: (shape.queries, shape.heads, shape.batch), block: 256,
               In(q), In(k), In(v), In(keyMask), Out(out), Int32(shape.queries), Int32(shape.keys), Int32(shape.capacity),
               Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headSize), Int32(shape.queryStride), Int32(shape.kvStride),
               shape.scale, Int32(shape.window), shape.softcap)
    }

    public func crossEntropy(logits: DeviceBuffer, targets: DeviceBuffer, losses: DeviceBuffer, rows: Int, vocab: Int) {
        launch(ForwardKernels.crossEntropy, grid: (rows, 1, 1), block: 256, In(logits), In(targets), Out(losses), Int32(vocab))
    }

    public func argmax(logits: DeviceBuffer, out: DeviceBuffer, rows: Int, vocab: Int) {
        launch(ForwardKernels.argmax, grid: (rows, 1, 1), block: 256, In(logits), Out(out), Int32(vocab))
    }

    /// One launch per tensor and per group of at most `KernelTerms.capacity` terms; with a
    /// snapshot, the pass stops after `afterTerms` terms while the parameters are copied to the
    /// host on the compute stream, then goes on (decay factor 1 from the second launch: the
    /// same roundings as one pass, so the values match the CPU bit for bit). No device memory.
    public func perturb(_ parameters: DeviceBuffer, tensors: [PerturbedTensor], terms: [PerturbationTerm], decayFactor: Float,
                        kind: PerturbationKind, snapshot: PerturbationSnapshot?) {
        var cuts = Set(stride(from: KernelTerms.capacity, to: terms.count, by: KernelTerms.capacity))
        cuts.insert(terms.count)
        if let snapshot { cuts.insert(min(snapshot.afterTerms, terms.count)) }
        var start = 0, decay = decayFactor
        for end in cuts.sorted() {
            if end > start || decay != 1 {
                for tensor in tensors {
                    launch(NoiseKernels.perturb, grid: (blocks(tensor.count), 1, 1), block: 256,
                           Out(parameters.floats(tensor.offset, tensor.count)), UInt64(tensor.count), tensor.id,
                           Int32(tensor.decays ? 1 : 0), KernelTerms(terms[start..<end]), decay, Self.kindCode(kind))
                }
                decay = 1
            }
            if let snapshot, end == min(snapshot.afterTerms, terms.count) {
                let extent = (tensors.map { $0.offset + $0.count }.max() ?? 0) * 4
                download(parameters, to: snapshot.host, hostOffset: 0, byteCount: extent, on: computeStream)
            }
            start = end
        }
    }

    public func decode(_ encoded: DeviceBuffer, format: LinkFormat, count: Int, out: DeviceBuffer) {
        guard format != .fp32 else {
            return copyRows(source: encoded, sourceStride: count, destination: out, destinationStride: count, rows: 1, width: count)
        }
        launch(CodecKernels.decode, grid: (blocks(count), 1, 1), block: 256, In(encoded), Out(out), UInt64(count), Self.formatCode(format))
    }

    public func encode(_ values: DeviceBuffer, count: Int, format: LinkFormat, stochasticSeed: UInt64?, out: DeviceBuffer) {
        guard format != .fp32 else {
            return copyRows(source: values, sourceStride: count, destination: out, destinationStride: count, rows: 1, width: count)
        }
        launch(CodecKernels.encode, grid: ((count + 127) / 128, 1, 1), block: 128, In(values), Out(out), UInt64(count),
               Self.formatCode(format), Int32(stochasticSeed == nil ? 0 : 1), stochasticSeed ?? 0)
    }

    /// z of elements [0, count) of stream (seed, tensor) into `out`, for parity checks
    /// against `Noise`.
    public func fillNoise(_ out: DeviceBuffer, count: Int, kind: PerturbationKind, seed: UInt64, tensor: UInt32) {
        launch(NoiseKernels.fillNoise, grid: (blocks(count), 1, 1), block: 256, Out(out), UInt64(count), Self.kindCode(kind), seed, tensor)
    }
}
