import ZOCore
import ZOFormats

/// A model configuration that knows its architecture: what planning, benchmarks and the
/// backend parity checks need from a model without its weights.
public protocol ArchitectureConfig: Sendable {
    /// L; settable, so that a plan or benchmark can keep the first blocks only.
    var numHiddenLayers: Int { get set }
    /// The longest sequence its positions allow.
    var maxPositionEmbeddings: Int { get }
    /// V.
    var vocabSize: Int { get }
    /// Its sizes without parameters.
    var shape: ModelShape { get }
    /// A model of this config with zeroed parameters, its blocks in `blockStorage`.
    func makeModel(blockStorage: HostStorage) throws(ModelError) -> any CausalLM
}

/// One architecture as `ModelRegistry` knows it: how it is recognised on disk, loaded, and
/// sized by name. Each family declares this next to its model; the registry lists the families.
public protocol ModelFamily: Sendable {
    /// The family's display name ("Llama", "Qwen2").
    static var name: String { get }
    /// The Hugging Face `model_type`s its config.json may name.
    static var modelTypes: [String] { get }
    /// The GGUF `general.architecture`s it loads.
    static var ggufArchitectures: [String] { get }
    /// Published sizes by short name ("qwen2.5-7b").
    static var namedShapes: [(name: String, config: any ArchitectureConfig)] { get }
    /// A 3-block model with small sizes (V 512, 64 positions) for the backend parity checks.
    static var parityConfig: any ArchitectureConfig { get }

    /// Loads a Hugging Face folder (config.json and safetensors).
    static func load(directory: String, blockStorage: HostStorage) throws(ModelError) -> any CausalLM
    /// Loads a GGUF file whose architecture is one of `ggufArchitectures`.
    static func load(gguf file: GGUFFile, blockStorage: HostStorage) throws(ModelError) -> any CausalLM
}

extension ModelFamily {
    public static var ggufArchitectures: [String] { [] }

    public static func load(gguf file: GGUFFile, blockStorage: HostStorage) throws(ModelError) -> any CausalLM {
        throw .unsupported(path: file.path, reason: "\(name) from GGUF")
    }
}
