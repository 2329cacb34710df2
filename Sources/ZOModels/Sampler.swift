#if canImport(Glibc)
import Glibc
#endif
import ZOCore

/// Picks the next token from a row of logits: greedy (temperature 0) or temperature sampling
/// restricted to the smallest set of tokens whose probability reaches `topP` (nucleus),
/// reproducible from `seed`.
public struct Sampler: Sendable {
    public let temperature: Float
    public let topP: Float
    private var generator: SplitMix64

    public init(temperature: Float, topP: Float, seed: UInt64) {
        self.temperature = temperature
        self.topP = topP
        generator = SplitMix64(seed: seed)
    }

    /// The next token for `logits` [V].
    public mutating func next(_ logits: ArraySlice<Float>) -> Int {
        let base = logits.startIndex
        guard temperature > 0 else { return logits.indices.max { logits[$0] < logits[$1] }! - base }
        let top = logits.max()!
        var candidates = logits.indices.map { (id: $0 - base, p: Double(((logits[$0] - top) / temperature)).exponential) }
        let total = candidates.reduce(0) { $0 + $1.p }
        candidates.sort { $0.p > $1.p }
        var kept = 0, mass = 0.0
        while kept < candidates.count, mass < Double(topP) * total || kept == 0 {
            mass += candidates[kept].p
            kept += 1
        }
        var r = Double(generator.next() >> 11) / Double(1 << 53) * mass
        for candidate in candidates[0..<kept] {
            r -= candidate.p
            if r <= 0 { return candidate.id }
        }
        return candidates[kept - 1].id
    }
}

extension Double {
    fileprivate var exponential: Double {
        #if canImport(Glibc)
        return Glibc.exp(self)
        #else
        return Foundation.exp(self)
        #endif
    }
}
