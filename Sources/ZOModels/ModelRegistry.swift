#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOFormats

/// Chooses the architecture of a model on disk: a GGUF file by `general.architecture`, a
/// Hugging Face folder by `model_type` in its config.json. The one place architectures are
/// registered: a new family is one line here.
public enum ModelRegistry {
    /// Every supported architecture.
    public static let families: [any ModelFamily.Type] = [OPTFamily.self, LlamaFamily.self, MistralFamily.self, Qwen2Family.self,
                                                           Qwen3Family.self, Phi3Family.self, Gemma2Family.self, Gemma3Family.self]

    /// Hugging Face `model_type`s refused by name: variants of supported families that ZOTune does not run.
    static let refused = [
        "mixtral": "a mixture of experts", "qwen2_moe": "a mixture of experts", "qwen3_moe": "a mixture of experts",
        "qwen2_vl": "multimodal", "qwen2_5_vl": "multimodal", "mistral3": "multimodal", "llava": "multimodal",
        "mllama": "multimodal", "phimoe": "a mixture of experts", "phi3_v": "multimodal", "phi4mm": "multimodal",
        "gemma3": "multimodal (its language model is gemma3_text)", "gemma3n": "multimodal", "paligemma": "multimodal",
    ]

    /// Names of the supported `model_type`s.
    public static var architectures: [String] { families.flatMap { $0.modelTypes }.sorted() }

    /// The family whose config.json says `model_type`.
    public static func family(modelType: String) -> (any ModelFamily.Type)? {
        families.first { $0.modelTypes.contains(modelType) }
    }

    /// The model folder of a training run's output folder (`RUN/model`, when `path` is a folder
    /// without config.json whose model/ has one); any other path as it is.
    public static func modelPath(_ path: String) -> String {
        let fm = FileManager.default
        let isRun = fm.fileExists(atPath: path + "/.") && !fm.fileExists(atPath: path + "/config.json")
            && fm.fileExists(atPath: path + "/model/config.json")
        return isRun ? path + "/model" : path
    }

    /// Loads the model at `path`: a `.gguf` file, a folder with config.json, or a training run's
    /// output folder (`zotune train --output`, whose final model is in `model/`); the blocks'
    /// host copies go to `blockStorage`.
    public static func load(path: String, blockStorage: HostStorage = .memory) throws(ModelError) -> any CausalLM {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .config(path: path, reason: "no such file or folder")
        }
        let path = modelPath(path)
        if !FileManager.default.fileExists(atPath: path + "/.") {
            let file: GGUFFile
            do { file = try GGUFFile(path: path) } catch { throw .gguf(error) }
            let architecture = file.metadata["general.architecture"]?.string ?? "(none)"
            guard let family = families.first(where: { $0.ggufArchitectures.contains(architecture) }) else {
                let supported = families.flatMap { $0.ggufArchitectures }.sorted().joined(separator: ", ")
                throw .unsupported(path: path, reason: "general.architecture '\(architecture)' (supported: \(supported))")
            }
            return try family.load(gguf: file, blockStorage: blockStorage)
        }
        let configPath = path + "/config.json"
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw .config(path: configPath, reason: "no such file (a model folder holds config.json and its safetensors; "
                                                    + "a training run's output folder holds them in model/)")
        }
        struct ModelType: Decodable { let model_type: String? }
        let modelType: String
        do {
            modelType = try JSONDecoder().decode(ModelType.self, from: Data(contentsOf: URL(fileURLWithPath: configPath))).model_type ?? "(none)"
        } catch {
            throw .config(path: configPath, reason: "cannot read a model_type from it")
        }
        if let kind = refused[modelType] {
            throw .unsupported(path: configPath, reason: "model_type '\(modelType)' is \(kind) (supported: \(architectures.joined(separator: ", ")))")
        }
        guard let family = family(modelType: modelType) else {
            throw .unsupported(path: configPath, reason: "model_type '\(modelType)' (supported: \(architectures.joined(separator: ", ")))")
        }
        return try family.load(directory: path, blockStorage: blockStorage)
    }
}
