import ZOCore
import ZOModels

/// A LoRA adapter trained by a ZO estimator, the base frozen: each targeted weight W [out, in]
/// of the blocks computes x Wᵀ + scale · (x Aᵀ) Bᵀ with A [r, in] and B [out, r] as PEFT's
/// LoRA layers do (scale α/r, or α/√r with rsLoRA); only A and B are perturbed and updated.
public struct LoRAOptions: Sendable, Codable, Equatable, LinearAdapterFactory {
    /// r.
    public var rank: Int
    /// α (PEFT's lora_alpha).
    public var alpha: Float
    /// The module names adapted (a weight `….q_proj.weight` is adapted for "q_proj"), or
    /// ["all-linear"]: every 2-D weight of the blocks.
    public var targets: [String]
    /// Whether scale is α/√r (rsLoRA) instead of α/r.
    public var rsLoRA: Bool
    /// The seed of A's initial values (B starts at zero): PEFT's Kaiming-uniform bound 1/√in.
    public var seed: UInt64
    /// Whether A and B start from an adapter read from a file (then `seed` draws nothing).
    public var startsFromAdapter: Bool

    public init(rank: Int, alpha: Float, targets: [String], rsLoRA: Bool = false, seed: UInt64 = 0, startsFromAdapter: Bool = false) {
        precondition(rank >= 1 && !targets.isEmpty)
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.rsLoRA = rsLoRA
        self.seed = seed
        self.startsFromAdapter = startsFromAdapter
    }

    /// The settings of a PEFT adapter, to train it further.
    public init(adapter: PEFTAdapter, seed: UInt64 = 0) {
        self.init(rank: adapter.rank, alpha: adapter.alpha, targets: adapter.targetModules, rsLoRA: adapter.rsLoRA, seed: seed,
                  startsFromAdapter: true)
    }

    /// PEFT's default targets: the attention's query and value projections.
    public static let defaultTargets = ["q_proj", "v_proj"]

    /// What B A is multiplied by.
    public var scale: Float { rsLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }

    /// Whether the weight `name` (`model.layers.0.self_attn.q_proj.weight`) is adapted.
    public func adapts(_ name: String) -> Bool {
        targets == ["all-linear"] || targets.contains { Self.matches(name, target: $0) }
    }

    /// Whether `target` names the module of the weight `name`: its last part (`q_proj`) or a
    /// dotted tail of it (`self_attn.q_proj`), as PEFT matches target_modules.
    public static func matches(_ name: String, target: String) -> Bool {
        let module = name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
        return module == target || module.hasSuffix("." + target)
    }

    /// A with seeded initial values and B zero for the targeted weights of every block; those of
    /// blocks 0..<blockCount (the runner's) train by ZO, the others (a first-order tail's) first-order.
    public func makeAdapter(model: any CausalLM, blockCount: Int, backend: any Backend) throws -> any LinearAdapter {
        try LoRAState(model: model, zeroOrderBlocks: blockCount, options: self, backend: backend)
    }
}
