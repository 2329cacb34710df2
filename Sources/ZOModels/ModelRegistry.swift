#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOCore
import ZOFormats

/// Chooses the architecture of a model on disk: a GGUF file by `general.architecture`, a
/// Hugging Face folder by `model_type` in its config.json. The one place architectures are
/// registered.
public enum ModelRegistry {
    /// Architectures by name, with their loaders.
    private static let folders: [String: @Sendable (String, HostStorage) throws(ModelError) -> any CausalLM] = [
        "opt": { directory, storage throws(ModelError) in try OPTModel.load(directory: directory, blockStorage: storage) },
        "llama": { directory, storage throws(ModelError) in try LlamaModel.load(directory: directory, blockStorage: storage) },
    ]
    private static let ggufArchitectures: [String: @Sendable (GGUFFile, HostStorage) throws(ModelError) -> any CausalLM] = [
        "llama": { file, storage throws(ModelError) in try LlamaModel.load(gguf: file, blockStorage: storage) },
    ]

    /// Names of the supported architectures.
    public static var architectures: [String] { folders.keys.sorted() }

    /// Loads the model at `path`: a `.gguf` file or a folder with config.json; the blocks'
    /// host copies go to `blockStorage`.
    public static func load(path: String, blockStorage: HostStorage = .memory) throws(ModelError) -> any CausalLM {
        guard FileManager.default.fileExists(atPath: path) else {
            throw .config(path: path, reason: "no such file or folder")
        }
        if !FileManager.default.fileExists(atPath: path + "/.") {
            let file: GGUFFile
            do { file = try GGUFFile(path: path) } catch { throw .gguf(error) }
            let architecture = file.metadata["general.architecture"]?.string ?? "(none)"
            guard let load = ggufArchitectures[architecture] else {
                throw .unsupported(path: path, reason: "general.architecture '\(architecture)' (supported: \(ggufArchitectures.keys.sorted().joined(separator: ", ")))")
            }
            return try load(file, blockStorage)
        }
        let configPath = path + "/config.json"
        struct ModelType: Decodable { let model_type: String? }
        let modelType: String
        do {
            modelType = try JSONDecoder().decode(ModelType.self, from: Data(contentsOf: URL(fileURLWithPath: configPath))).model_type ?? "(none)"
        } catch {
            throw .config(path: configPath, reason: "cannot read a model_type from it")
        }
        guard let load = folders[modelType] else {
            throw .unsupported(path: configPath, reason: "model_type '\(modelType)' (supported: \(architectures.joined(separator: ", ")))")
        }
        return try load(path, blockStorage)
    }
}
