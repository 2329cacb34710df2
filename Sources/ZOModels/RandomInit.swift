import Dispatch
import ZOCore

extension CausalLM {
    /// Fills every parameter for benchmarks and tests: matrices and embeddings uniform with
    /// standard deviation `std`, biases 0, norm weights `unitNormWeight` (a norm that scales by 1)
    /// and norm biases 0. Deterministic in `seed` (SplitMix64 per tensor).
    public func initializeRandomly(seed: UInt64, std: Float = 0.02) {
        let tensors = groups.flatMap { group in group.layout.specs.map { (group, $0) } }
        let unit = unitNormWeight
        // Each iteration writes one tensor; a group's tensors do not overlap.
        DispatchQueue.concurrentPerform(iterations: tensors.count) { index in
            let (group, spec) = tensors[index]
            let values = group.values(spec)
            switch spec.kind {
            case .matrix, .embedding:
                var generator = SplitMix64(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
                let scale = std * Float(3).squareRoot() * 2 / Float(1 << 24)
                for i in values.indices {
                    values[i] = (Float(generator.next() >> 40) - Float(1 << 23)) * scale
                }
            case .bias:
                values.update(repeating: 0)
            case .norm:
                values.update(repeating: spec.name.hasSuffix(".bias") ? 0 : unit)
            }
        }
    }
}
