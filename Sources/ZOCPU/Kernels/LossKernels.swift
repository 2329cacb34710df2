#if canImport(Glibc)
import Glibc
#endif

/// -log softmax(row)[target] for one row of V logits (log-sum-exp with the max subtracted).
@inline(__always)
func crossEntropyRow(_ logits: UnsafePointer<Float>, _ vocab: Int, _ target: Int) -> Float {
    let best = maxElement(logits, vocab)
    let vbest = F8(repeating: best)
    var acc = F8()
    var i = 0
    while i + 8 <= vocab {
        acc += exp8(load8(logits + i) - vbest)
        i += 8
    }
    var sum = acc.sum()
    while i < vocab {
        sum += exp1(logits[i] - best)
        i += 1
    }
    return logf(sum) + best - logits[target]
}

/// Index of the first maximum of one row of V logits.
@inline(__always)
func argmaxRow(_ logits: UnsafePointer<Float>, _ vocab: Int) -> Int {
    let best = maxElement(logits, vocab)
    var i = 0
    while i < vocab, logits[i] != best { i += 1 }
    return i < vocab ? i : 0  // all NaN: report 0
}
