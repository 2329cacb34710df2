import ZOCore

/// A published model size by short name ("opt-1.3b", "llama-3.1-8b"): what `zotune plan` predicts
/// for and `zotune bench` builds with random weights. Each family lists its own sizes
/// (`ModelFamily.namedShapes`); this joins the registry's.
public struct NamedShape: Sendable {
    /// The architecture and sizes.
    public var config: any ArchitectureConfig

    public init(_ config: any ArchitectureConfig) { self.config = config }

    /// Every named shape, family by family in the registry's order.
    public static var all: [(name: String, shape: NamedShape)] {
        ModelRegistry.families.flatMap { family in family.namedShapes.map { ($0.name, NamedShape($0.config)) } }
    }

    /// The shape called `name` (any case), or throws listing the known names.
    public static func named(_ name: String) throws(ModelError) -> NamedShape {
        guard let entry = all.first(where: { $0.name == name.lowercased() }) else {
            throw .unknownShape(name: name, known: all.map(\.name))
        }
        return entry.shape
    }

    /// The same architecture with only its first `layers` blocks.
    public func truncated(to layers: Int) -> NamedShape {
        var config = config
        config.numHiddenLayers = layers
        return NamedShape(config)
    }

    public var layers: Int { config.numHiddenLayers }

    /// The longest sequence its positions allow.
    public var maxPositions: Int { config.maxPositionEmbeddings }

    public var vocabSize: Int { config.vocabSize }

    public var shape: ModelShape { config.shape }

    /// A model of this shape (parameters uninitialized), its blocks' host copies in `blockStorage`.
    public func makeModel(blockStorage: HostStorage = .memory) throws(ModelError) -> any CausalLM {
        try config.makeModel(blockStorage: blockStorage)
    }
}

extension ModelShape {
    /// Multiply-adds ×2 of one forward pass over `batch` × `seq` tokens: every weight matrix
    /// (blocks, OPT's projections, the LM head, tied or not) once per token, plus causal attention
    /// (QKᵀ and PV over the T(T+1)/2 visible pairs of every head, C columns in all).
    public func forwardFLOPs(batch: Int, seq: Int) -> (matrices: Double, total: Double) {
        let matrices = ([embedding, head] + blocks).reduce(0) { total, layout in
            total + layout.specs.filter { $0.kind == .matrix }.reduce(0) { $0 + $1.count }
        } + (tiedTokenTable?.count ?? 0)
        let tokens = Double(batch * seq)
        let attention = Double(blocks.count) * Double(batch) * 2 * Double(seq) * Double(seq + 1) * Double(hiddenSize)
        return (2 * Double(matrices) * tokens, 2 * Double(matrices) * tokens + attention)
    }
}
