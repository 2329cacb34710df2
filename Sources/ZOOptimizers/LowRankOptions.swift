import ZOCore
import ZOModels

/// The low-rank ZO estimator's settings (LOZO's lazy sampling, the second seed's "stable
/// sampling"): every 2-D weight W [out, in] of a block is perturbed along z = U Vᵀ / √r,
/// U [out, r] fresh every step, V [in, r] resampled every `resampleEvery` steps.
public struct LowRankOptions: Sendable, Codable, Equatable, LinearAdapterFactory {
    /// r.
    public var rank: Int
    /// ν: steps between resamplings of V (and foldings of the accumulated update into W).
    public var resampleEvery: Int
    /// Whether only the low-rank weights train: embeddings, norms, biases and the head stay
    /// as they are (no full perturbation passes at all), so a step's streams differ only in
    /// their rank-r terms and a runner runs them stacked (`StreamStack`): each block linear
    /// reads its weights once for every stream. Off (the default), the other parameters get
    /// full perturbations as under MeZO.
    public var lowRankOnly: Bool

    public init(rank: Int, resampleEvery: Int, lowRankOnly: Bool = false) {
        precondition(rank >= 1 && resampleEvery >= 1)
        self.rank = rank
        self.resampleEvery = resampleEvery
        self.lowRankOnly = lowRankOnly
    }

    /// Reads options written before `lowRankOnly` existed as without it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        rank = try container.decode(Int.self, forKey: .rank)
        resampleEvery = try container.decode(Int.self, forKey: .resampleEvery)
        lowRankOnly = try container.decodeIfPresent(Bool.self, forKey: .lowRankOnly) ?? false
        guard rank >= 1, resampleEvery >= 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "rank \(rank) and resampleEvery \(resampleEvery) must be at least 1"))
        }
    }

    /// Zeroed factors for the fused linears of blocks 0..<blockCount.
    public func makeAdapter(model: any CausalLM, blockCount: Int, backend: any Backend) throws -> any LinearAdapter {
        try LowRankState(model: model, blockCount: blockCount, linears: model.blockLinears, options: self, backend: backend)
    }
}
