import ArgumentParser
import ZOCore
import ZOModels
import ZOOptimizers
import ZOTraining

/// `zotune train`'s choice of estimator (MeZO, low-rank, population) and first-order options:
/// the deepest blocks trained by backpropagation (hybrid ZO/FO, the second seed), the
/// ablation without ZO, and full first-order training.
struct HybridOptions: ParsableArguments {
    @Option(name: .customLong("fo-blocks"),
            help: "Train the deepest K blocks, the final norm and the head first-order (hybrid ZO/FO); 'all': every parameter (full first-order). With --lora: the adapter's factors in those blocks.")
    var foBlocks: String?

    @Option(help: """
        The ZO estimator: population (the default: N perturbations per step in one sweep, FZOO's rule, see --queries), \
        mezo (two-point, full z), low-rank (2-D block weights along U Vᵀ, see --rank), or off (with --fo-blocks: the \
        other blocks stay frozen).
        """)
    var zo = ZeroOrderChoice.population

    @Option(help: "With --zo low-rank (default 2) or population (default: full rank): the rank r of U Vᵀ.") var rank: Int?

    @Option(help: "With --zo population: N, perturbations per step (default 4).") var queries: Int?

    @Flag(inversion: .prefixedNo,
          help: "With --zo population: N one-sided perturbations and the unperturbed loss (N + 1 forwards; the default), or two-sided (2N).")
    var oneSided: Bool?

    @Option(help: "With --zo population: divide the loss differences by their spread (std, FZOO's rule; the default) or by ε (none).")
    var normalize: PopulationOptions.Normalization?

    @Flag(name: .customLong("low-rank-only"), help: """
        With --rank: train only the blocks' 2-D weights (low rank); embeddings, norms, biases and the head stay frozen, \
        so a step's streams differ only in their rank-r terms and (without --fo-blocks) go through the model stacked, one \
        GEMM per linear for all.
        """)
    var lowRankOnly = false

    @Option(name: .customLong("resample-every"), help: "With --zo low-rank: steps ν between draws of V (and foldings of A Vᵀ into W).")
    var resampleEvery = 50

    @Option(name: .customLong("fo-optimizer"), help: "adamw or sgd (with --fo-momentum).")
    var foOptimizer = FirstOrderChoice.adamw

    @Option(name: .customLong("fo-lr"), help: "Peak learning rate of the first-order part; it follows --schedule.")
    var foLR: Float = 1e-5

    @Option(name: .customLong("fo-momentum"), help: "SGD momentum.") var foMomentum: Float = 0.9

    @Option(name: .customLong("fo-weight-decay"), help: "Weight decay of the first-order part (decoupled for AdamW).")
    var foWeightDecay: Float = 0

    @Option(name: .customLong("fo-state"), help: "Where the optimizer state lives: device, or host (downloaded and uploaded each step).")
    var foState = OptimizerStatePlacement.device

    enum ZeroOrderChoice: String, ExpressibleByArgument {
        case mezo, population, off
        case lowRank = "low-rank"
    }

    /// The low-rank estimator's options with --zo low-rank, or --zo population with --rank.
    var lowRank: LowRankOptions? {
        switch zo {
        case .lowRank: LowRankOptions(rank: rank ?? 2, resampleEvery: resampleEvery, lowRankOnly: lowRankOnly)
        case .population: rank.map { LowRankOptions(rank: $0, resampleEvery: resampleEvery, lowRankOnly: lowRankOnly) }
        case .mezo, .off: nil
        }
    }

    /// Forward passes of the batch per ZO step: MeZO's two (q 1), a population's N + 1 or 2N.
    var streams: Int { zo == .off ? 1 : MeZOOptions(population: population).streams }

    /// The population estimator's options with --zo population.
    var population: PopulationOptions? {
        zo == .population ? PopulationOptions(queries: queries ?? 4, oneSided: oneSided ?? true, normalize: normalize ?? .std) : nil
    }
    enum FirstOrderChoice: String, ExpressibleByArgument { case adamw, sgd }

    /// Whether the run has a first-order part.
    var isFirstOrder: Bool { foBlocks != nil }

    func validate() throws {
        if let foBlocks, foBlocks != "all", (Int(foBlocks) ?? 0) < 1 {
            throw ValidationError("--fo-blocks '\(foBlocks)' is neither a positive number of blocks nor 'all'")
        }
        if foBlocks == nil, zo == .off { throw ValidationError("--zo off needs --fo-blocks (otherwise nothing would train)") }
        if foBlocks == "all", zo != .off { throw ValidationError("--fo-blocks all trains every parameter first-order; add --zo off") }
        guard (rank ?? 1) >= 1, resampleEvery >= 1, (1...1024).contains(queries ?? 4) else {
            throw ValidationError("--rank and --resample-every must be at least 1, --queries from 1 to 1024")
        }
        if rank != nil, zo != .lowRank, zo != .population { throw ValidationError("--rank needs --zo low-rank or --zo population") }
        if lowRankOnly, zo != .lowRank, rank == nil { throw ValidationError("--low-rank-only needs --rank (or --zo low-rank)") }
        if zo != .population, queries != nil || oneSided != nil || normalize != nil {
            throw ValidationError("--queries, --one-sided/--no-one-sided and --normalize set a population estimator: add --zo population")
        }
        if zo == .population, oneSided ?? true, (normalize ?? .std) == .std, (queries ?? 4) < 2 {
            throw ValidationError("--queries 1 has no spread to normalize by: take --queries 2 or more, --no-one-sided or --normalize none")
        }
        guard foLR >= 0, foWeightDecay >= 0, (0..<1).contains(foMomentum) else {
            throw ValidationError("--fo-lr and --fo-weight-decay must be ≥ 0 and --fo-momentum in [0, 1)")
        }
    }

    /// The run's first-order options (nil without --fo-blocks).
    func firstOrderOptions() throws -> FirstOrderOptions? {
        guard let foBlocks else { return nil }
        let rule: FirstOrderRule = switch foOptimizer {
        case .adamw: .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: foWeightDecay)
        case .sgd: .sgd(momentum: foMomentum, weightDecay: foWeightDecay)
        }
        return FirstOrderOptions(blocks: Int(foBlocks) ?? Int.max, embedding: foBlocks == "all", zeroOrder: zo != .off, rule: rule,
                                 learningRate: foLR, statePlacement: foState)
    }

    /// One line on what trains how (with `lora`: the adapter's factors alone).
    func describe(tail: FirstOrderTail, lora: Bool = false) -> String {
        let count = tail.model.blocks.count, first = tail.firstBlock
        let trained = lora ? "the LoRA factors of blocks \(first)–\(count - 1)"
            : tail.trainsEmbedding ? "every parameter" : "blocks \(first)–\(count - 1), the final norm and the head"
        let estimator = switch zo {
        case .lowRank: "low-rank ZO (r \(rank ?? 2), ν \(resampleEvery))"
        case .population: "population ZO (N \(queries ?? 4)\(rank.map { ", r \($0)" } ?? ""))"
        case .mezo, .off: "MeZO"
        }
        let zeroOrder = lora ? "those of blocks 0–\(first - 1)"
            : lowRankOnly ? "the 2-D weights of blocks 0–\(first - 1)" : "blocks 0–\(first - 1) and the embedding"
        let rest = first == 0 ? "" : zo != .off ? "; \(zeroOrder) by \(estimator)" : "; blocks 0–\(first - 1) frozen"
        return "\(trained) by \(foOptimizer.rawValue) (state on the \(foState.rawValue))\(rest)"
    }
}

extension FirstOrderOptions {
    /// k for a model of `count` blocks: the option's block count, at most all of them.
    func blocks(of count: Int) -> Int { min(blocks, count) }
}

extension OptimizerStatePlacement: ExpressibleByArgument {}
extension PopulationOptions.Normalization: ExpressibleByArgument {}
