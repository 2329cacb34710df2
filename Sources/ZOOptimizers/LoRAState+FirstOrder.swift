import ZOCore
import ZOModels

/// The factors of a hybrid run's tail blocks, trained first-order: the tail's backward pass
/// reaches them through `LinearBackwardHook`, its optimizer updates them as `TrainedTensor`s.
extension LoRAState: LinearBackwardHook {
    /// The factors trained first-order (blocks zeroOrderBlocks..<L).
    var firstOrderFactors: FlattenSequence<ArraySlice<[Factors]>> { linears[min(zeroOrderBlocks, linears.count)...].joined() }

    /// A and B of the first-order blocks' adapted weights with their gradients (PEFT's names).
    public var firstOrderTensors: [TrainedTensor] {
        firstOrderFactors.flatMap { factors -> [TrainedTensor] in
            guard let gradients = factors.gradients else { return [] }
            let k = factors.linear.inputs, r = rank
            return factors.parts.enumerated().flatMap { i, part in
                let stem = String(part.name.dropLast(".weight".count))
                let a = (offset: i * r * k, count: r * k), b = (offset: part.bRow * r, count: part.rows * r)
                return [TrainedTensor(name: stem + ".lora_A.weight", values: factors.a.floats(a.offset, a.count),
                                      gradient: gradients.a.floats(a.offset, a.count), decays: true),
                        TrainedTensor(name: stem + ".lora_B.weight", values: factors.b.floats(b.offset, b.count),
                                      gradient: gradients.b.floats(b.offset, b.count), decays: true)]
            }
        }
    }

    /// After the first-order optimizer moved B: the resting term follows it.
    public func refreshFirstOrder() { firstOrderFactors.forEach(refreshRest) }

    /// Sets the first-order factors' gradients to zero.
    public func zeroFirstOrderGradients() {
        guard let backend = backend as? any GradientBackend else { return }
        for factors in firstOrderFactors {
            guard let gradients = factors.gradients else { continue }
            backend.zero(gradients.a, count: factors.parts.count * rank * factors.linear.inputs)
            backend.zero(gradients.b, count: factors.bRows * rank)
        }
    }

    /// For a first-order block's fused linear, the term `add` added, y += t·restᵀ with
    /// t = x·Aᵀ [R, m·r] and rest the block-diagonal scale·B: with u = gradY·rest [R, m·r],
    /// dL/dA += uᵀ·x, dL/dB_i += scale·(gradYᵀ·t) at B_i's block, and gradX += u·A.
    public func backward(block index: Int, weightOffset: Int, x: DeviceBuffer, gradY: DeviceBuffer, gradX: DeviceBuffer?, rows: Int) {
        guard index >= zeroOrderBlocks, let factors = factors(block: index, weightOffset: weightOffset), let gradients = factors.gradients,
              let backend = backend as? any GradientBackend, let scratch, let backwardScratch else { return }
        precondition(rows <= scratchRows, "reserve(rows:) first")
        let m = factors.parts.count, width = m * rank, k = factors.linear.inputs, o = factors.linear.outputs
        let t = scratch.floats(0, rows * width), u = scratch.floats(rows * width, rows * width)
        let gradRest = backwardScratch.floats(0, o * width)
        backend.linear(x: x, weight: factors.a, bias: nil, out: t, m: rows, n: width, k: k, activation: .none, accumulate: false)
        backend.gemm(a: gradY, b: factors.rest, out: u, m: rows, n: width, k: o, transposeA: false, transposeB: false, accumulate: false)
        backend.gemm(a: u, b: x, out: gradients.a, m: width, n: k, k: rows, transposeA: true, transposeB: false, accumulate: true)
        backend.gemm(a: gradY, b: t, out: gradRest, m: o, n: width, k: rows, transposeA: true, transposeB: false, accumulate: false)
        for (i, part) in factors.parts.enumerated() {
            backend.copyRows(source: gradRest.floats(part.firstRow * width + i * rank, (part.rows - 1) * width + rank), sourceStride: width,
                             destination: factors.compact.floats(part.bRow * rank, part.rows * rank), destinationStride: rank,
                             rows: part.rows, width: rank)
        }
        backend.scale(factors.compact, count: factors.bRows * rank, by: options.scale)
        backend.add(factors.compact, to: gradients.b, count: factors.bRows * rank)
        if let gradX {
            backend.gemm(a: u, b: factors.a, out: gradX, m: rows, n: k, k: width, transposeA: false, transposeB: false, accumulate: true)
        }
    }
}
