extension MeZOOptions {
    /// What makes these options unusable, nil when nothing does: the conditions the options' and
    /// `MeZO`'s initializers require, checked again for options decoded from a file (a checkpoint's
    /// state.json, a trajectory's header), which bypass them.
    public var problem: String? {
        if q < 1 { return "q = \(q): at least one direction per step" }
        if lowRank != nil, lora != nil { return "a LoRA run has no low-rank estimator" }
        if let population {
            if q != 1 { return "q = \(q) with a population (its queries are the directions)" }
            if population.queries < 1 { return "population queries = \(population.queries): at least one" }
            if population.queries < 2, population.oneSided, population.normalize != .none {
                return "a one-sided population of 1 has no spread to normalize by"
            }
        }
        if let lowRank {
            if lowRank.rank < 1 || lowRank.resampleEvery < 1 {
                return "low-rank rank \(lowRank.rank), resample every \(lowRank.resampleEvery): both at least 1"
            }
            if perturbation != .gaussian || weightDecay != 0 { return "the low-rank estimator is Gaussian, without weight decay" }
        }
        if let lora, lora.rank < 1 || lora.targets.isEmpty { return "LoRA rank \(lora.rank) with \(lora.targets.count) targets" }
        return nil
    }
}
