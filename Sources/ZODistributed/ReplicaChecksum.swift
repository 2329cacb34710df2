import ZOModels

/// A 64-bit checksum of every parameter tensor's bits, in the model's order: replicas that hold
/// the same bits have the same checksums, and the first checksum that differs names a tensor.
public enum ReplicaChecksum {
    /// "block 3/self_attn.q_proj.weight" and its checksum, for every tensor of the model's host
    /// groups (bring the runner's values there first: `ModelRunner.copyParametersToHost`).
    public static func tensors(of model: any CausalLM) -> [(name: String, checksum: UInt64)] {
        model.groups.flatMap { group in
            group.layout.specs.map { spec in (group.label + "/" + spec.name, checksum(group.values(spec))) }
        }
    }

    /// "…q_proj.lora_A.weight" and its checksum for both factors of every pair of a LoRA adapter.
    public static func tensors(of adapter: PEFTAdapter) -> [(name: String, checksum: UInt64)] {
        adapter.pairs.flatMap { pair in
            let stem = String(pair.weightName.dropLast(".weight".count))
            var a = pair.a, b = pair.b
            return [(stem + ".lora_A.weight", a.withUnsafeMutableBufferPointer { checksum($0) }),
                    (stem + ".lora_B.weight", b.withUnsafeMutableBufferPointer { checksum($0) })]
        }
    }

    /// xxHash64's round over the values' bits, two floats at a time (then the count).
    static func checksum(_ values: UnsafeMutableBufferPointer<Float>) -> UInt64 {
        let prime1: UInt64 = 0x9E37_79B1_85EB_CA87, prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        var hash: UInt64 = 0x27D4_EB2F_1656_67C5
        var i = 0
        while i + 1 < values.count {
            let word = UInt64(values[i].bitPattern) | UInt64(values[i + 1].bitPattern) << 32
            hash = ((hash ^ (word &* prime2)) << 31 | (hash ^ (word &* prime2)) >> 33) &* prime1
            i += 2
        }
        if i < values.count { hash = (hash ^ UInt64(values[i].bitPattern) &* prime2) &* prime1 }
        return (hash ^ UInt64(values.count)) &* prime2
    }
}
