import CKernels
import ZOCore

/// θ ← a·θ + Σ_k c_k·z_k over the elements 128·block ..< 128·block + count (count ≤ 128) of a
/// tensor: the up to four chunks that share a Philox block of the Rademacher streams, whose
/// words are generated once per term for all four.
@inline(__always)
func perturbBlock(_ theta: UnsafeMutablePointer<Float>, count: Int, block: Int, tensor: PerturbedTensor,
                  terms: [PerturbationTerm], decayFactor: Float, kind: PerturbationKind,
                  snapshot: (values: UnsafeMutablePointer<Float>, afterTerms: Int)? = nil) {
    func chunks(_ words: UnsafePointer<SIMD4<UInt32>>?) {
        for lane in 0..<(count + 31) / 32 {
            perturbChunk(theta + lane * 32, count: min(32, count - lane * 32), chunk: block * 4 + lane, tensor: tensor, terms: terms,
                         decayFactor: decayFactor, kind: kind, rademacher: words.map { ($0, lane) },
                         snapshot: snapshot.map { ($0.values + lane * 32, $0.afterTerms) })
        }
    }
    guard kind == .rademacher else { return chunks(nil) }
    withUnsafeTemporaryAllocation(of: SIMD4<UInt32>.self, capacity: terms.count) { words in
        for (k, term) in terms.enumerated() {
            words[k] = Noise.rademacherWords(seed: term.seed, tensor: tensor.id, block: block)
        }
        chunks(UnsafePointer(words.baseAddress))
    }
}

/// θ ← a·θ + Σ_k c_k·z_k over one 32-element chunk (the last of a tensor may be shorter);
/// with a `snapshot`, the values after the decay and its first `afterTerms` terms also go to
/// its pointer. With `rademacher`, each term's z comes from word `lane` of its Philox block
/// there (`zt_add_signs`, Noise.signs' specification), else from `Noise.values`.
@inline(__always)
func perturbChunk(_ theta: UnsafeMutablePointer<Float>, count: Int, chunk: Int, tensor: PerturbedTensor,
                  terms: [PerturbationTerm], decayFactor: Float, kind: PerturbationKind,
                  rademacher: (words: UnsafePointer<SIMD4<UInt32>>, lane: Int)? = nil,
                  snapshot: (values: UnsafeMutablePointer<Float>, afterTerms: Int)? = nil) {
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
    if let rademacher {  // the terms' sign updates in C (vectorised for the CPU it runs on)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { buffer in
            let p = buffer.baseAddress!
            store8(v.0, p); store8(v.1, p + 8); store8(v.2, p + 16); store8(v.3, p + 24)
            for (index, term) in terms.enumerated() {
                if let snapshot, snapshot.afterTerms == index { snapshot.values.update(from: p, count: count) }
                zt_add_signs(p, rademacher.words[index][rademacher.lane], tensor.decays ? term.decayCoefficient : term.coefficient)
            }
            v = (load8(p), load8(p + 8), load8(p + 16), load8(p + 24))
        }
    } else {
        for (index, term) in terms.enumerated() {
            if let snapshot, snapshot.afterTerms == index { storeChunk(v, snapshot.values, count: count) }
            let c = F8(repeating: tensor.decays ? term.decayCoefficient : term.coefficient)
            let z = Noise.values(kind, seed: term.seed, tensor: tensor.id, chunk: chunk)
            v = (v.0 + c * z.0, v.1 + c * z.1, v.2 + c * z.2, v.3 + c * z.3)
        }
    }
    if let snapshot, snapshot.afterTerms == terms.count { storeChunk(v, snapshot.values, count: count) }
    storeChunk(v, theta, count: count)
}

/// Stores the first `count` of a chunk's 32 values.
@inline(__always)
private func storeChunk(_ v: (F8, F8, F8, F8), _ target: UnsafeMutablePointer<Float>, count: Int) {
    if count == 32 {
        store8(v.0, target); store8(v.1, target + 8); store8(v.2, target + 16); store8(v.3, target + 24)
    } else {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { tail in
            let p = tail.baseAddress!
            store8(v.0, p); store8(v.1, p + 8); store8(v.2, p + 16); store8(v.3, p + 24)
            target.update(from: p, count: count)
        }
    }
}

/// values[i] ← values[i] + Σ_k c_k·z_k(first + i) for i < count, where element first + i of
/// the tensor's stream may sit anywhere in its 32-element chunk: each chunk touched goes
/// through `perturbChunk` whole (in a scratch chunk), so the result equals a `perturb` pass
/// bit for bit.
func perturbRange(_ values: UnsafeMutablePointer<Float>, first: Int, count: Int, perturbation: RowPerturbation) {
    guard count > 0 else { return }
    let tensor = PerturbedTensor(offset: 0, count: 32, id: perturbation.tensor, decays: false)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { chunkBuffer in
        let lane = chunkBuffer.baseAddress!
        for chunk in (first / 32)...((first + count - 1) / 32) {
            let lower = max(first, chunk * 32), upper = min(first + count, chunk * 32 + 32)
            lane.initialize(repeating: 0, count: 32)
            (lane + lower - chunk * 32).update(from: values + lower - first, count: upper - lower)
            perturbChunk(lane, count: 32, chunk: chunk, tensor: tensor, terms: perturbation.terms, decayFactor: 1,
                         kind: perturbation.kind)
            (values + lower - first).update(from: lane + lower - chunk * 32, count: upper - lower)
        }
    }
}
