import ZOCore

/// θ ← a·θ + Σ_k c_k·z_k over one 32-element chunk (the last of a tensor may be shorter).
@inline(__always)
func perturbChunk(_ theta: UnsafeMutablePointer<Float>, count: Int, chunk: Int, tensor: PerturbedTensor,
                  terms: [PerturbationTerm], decayFactor: Float, kind: PerturbationKind) {
    var v = (F8(), F8(), F8(), F8())
    if count == 32 {
        v = (load8(theta), load8(theta + 8), load8(theta + 16), load8(theta + 24))
    } else {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { tail in
            tail.initialize(repeating: 0)
            tail.baseAddress!.update(from: theta, count: count)
            let p = tail.baseAddress!
            v = (load8(p), load8(p + 8), load8(p + 16), load8(p + 24))
        }
    }
    if tensor.decays {
        let a = F8(repeating: decayFactor)
        v = (v.0 * a, v.1 * a, v.2 * a, v.3 * a)
    }
    for term in terms {
        let c = F8(repeating: tensor.decays ? term.decayCoefficient : term.coefficient)
        let z = Noise.values(kind, seed: term.seed, tensor: tensor.id, chunk: chunk)
        v = (v.0 + c * z.0, v.1 + c * z.1, v.2 + c * z.2, v.3 + c * z.3)
    }
    if count == 32 {
        store8(v.0, theta); store8(v.1, theta + 8); store8(v.2, theta + 16); store8(v.3, theta + 24)
    } else {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { tail in
            let p = tail.baseAddress!
            store8(v.0, p); store8(v.1, p + 8); store8(v.2, p + 16); store8(v.3, p + 24)
            theta.update(from: p, count: count)
        }
    }
}
