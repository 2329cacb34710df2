#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The weights of a Hugging Face model folder: `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (`{"weight_map": {tensor: file}}`).
public final class SafetensorsCheckpoint: Sendable {
    /// The folder.
    public let directory: String
    /// Tensor name -> the file holding it.
    private let files: [String: SafetensorsFile]

    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// Opens the checkpoint in `directory`, preferring the single file when both exist.
    public init(directory: String) throws(SafetensorsError) {
        self.directory = directory
        let single = directory + "/" + Self.singleFileName
        let index = directory + "/" + Self.indexFileName
        if FileManager.default.fileExists(atPath: single) {
            let file = try SafetensorsFile(path: single)
            files = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
        } else if FileManager.default.fileExists(atPath: index) {
            files = try Self.openShards(indexPath: index, directory: directory)
        } else {
            throw .cannotRead(path: directory, reason: "neither \(Self.singleFileName) nor \(Self.indexFileName) is there")
        }
    }

    private struct Index: Decodable {
        let weight_map: [String: String]
    }

    private static func openShards(indexPath: String, directory: String) throws(SafetensorsError) -> [String: SafetensorsFile] {
        let index: Index
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: indexPath))
            index = try JSONDecoder().decode(Index.self, from: data)
        } catch {
            throw .malformedHeader(path: indexPath, reason: "not a safetensors index with a weight_map")
        }
        var opened: [String: SafetensorsFile] = [:]
        var files: [String: SafetensorsFile] = [:]
        for shard in Set(index.weight_map.values).sorted() {
            guard !shard.contains("/") else {
                throw .malformedHeader(path: indexPath, reason: "shard name '\(shard)' must be a file in the same folder")
            }
            opened[shard] = try SafetensorsFile(path: directory + "/" + shard)
        }
        for (tensor, shard) in index.weight_map {
            let file = opened[shard]!
            guard file.info(tensor) != nil else { throw .missingTensor(path: file.path, tensor: tensor) }
            files[tensor] = file
        }
        // Tensors a shard holds beyond the index must not shadow another shard's.
        for file in opened.values {
            for tensor in file.tensorNames where files[tensor] !== file {
                if files[tensor] != nil { throw .duplicateTensor(path: file.path, tensor: tensor) }
                files[tensor] = file
            }
        }
        return files
    }

    /// How many tensors the checkpoint holds.
    public var tensorCount: Int { files.count }

    /// All tensor names, sorted.
    public var tensorNames: [String] { files.keys.sorted() }

    /// The file holding `name`, or nil.
    public func file(for name: String) -> SafetensorsFile? { files[name] }

    /// Whether the checkpoint has a tensor called `name`.
    public func contains(_ name: String) -> Bool { files[name] != nil }

    /// Checks, from the headers alone, that tensor `name` is here with `shape` and a dtype
    /// `readFloats` converts.
    public func checkTensor(_ name: String, shape: [Int]) throws(SafetensorsError) {
        guard let file = files[name] else { throw .missingTensor(path: directory, tensor: name) }
        try file.checkTensor(name, shape: shape)
    }

    /// Converts tensor `name` to Float32 into `destination` after checking its shape.
    public func readFloats(_ name: String, expectedShape: [Int], into destination: UnsafeMutablePointer<Float>) throws(SafetensorsError) {
        guard let file = files[name] else { throw .missingTensor(path: directory, tensor: name) }
        try file.readFloats(name, expectedShape: expectedShape, into: destination)
    }
}
