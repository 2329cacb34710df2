import ZOCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The sha256 of a model's files, which checkpoints and trajectories record so that a
/// resume or a replay refuses a different base model.
public enum ModelFingerprint {
    /// For a folder: its config.json and safetensors files (and index), sorted by name, each
    /// hashed as name, size, bytes; for a single file (GGUF): the file's name, size and bytes.
    public static func sha256(path: String) throws -> String {
        guard let isDirectory = FileSystem.isFolder(path) else {
            throw CheckpointError.invalid(path: path, reason: "no such model file or folder")
        }
        let files: [String]
        if isDirectory {
            files = FileSystem.names(in: path)
                .filter { $0 == "config.json" || $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") }
                .sorted().map { path + "/" + $0 }
        } else {
            files = [path]
        }
        var hasher = SHA256Hasher()
        for file in files {
            let reader = try ReadOnlyFile(path: file)
            hasher.update(Array("\(file.split(separator: "/").last!)\u{0}\(reader.byteCount)\u{0}".utf8))
            try hasher.update(file: reader)
        }
        return TextFormat.hex(hasher.finalize())
    }
}
