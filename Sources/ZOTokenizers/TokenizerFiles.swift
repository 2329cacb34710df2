#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import ZOFormats

/// A tokenizer kept beside a saved model, so that the model folder alone can be run, evaluated
/// and exported.
public enum TokenizerFiles {
    /// The files of a tokenizer folder that are copied.
    static let names = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                        GGUFVocabulary.fileName]

    /// Copies the tokenizer at `source` into `directory`: a folder's tokenizer files, a
    /// tokenizer.json file, or a GGUF file's `tokenizer.*` metadata as a vocabulary-only
    /// tokenizer.gguf (with the file's `general.architecture`); nothing where there is none.
    public static func keep(tokenizerAt source: String, in directory: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: source + "/.") {
            for name in names where fm.fileExists(atPath: source + "/" + name) {
                try copy(source + "/" + name, to: directory + "/" + name)
            }
        } else if source.hasSuffix(".json") {
            try copy(source, to: directory + "/tokenizer.json")
        } else {
            let file = try GGUFFile(path: source)
            guard file.metadata["tokenizer.ggml.model"] != nil else { return }
            try GGUFVocabulary.write(try GGUFVocabulary.metadata(tokenizerAt: source),
                                     architecture: file.metadata["general.architecture"]?.string ?? "llama",
                                     to: directory + "/" + GGUFVocabulary.fileName)
        }
    }

    /// Copies `source` to `destination` through a temporary file renamed into place.
    private static func copy(_ source: String, to destination: String) throws {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: source)) } catch {
            throw TokenizerError.cannotRead(path: source, reason: "cannot read the file")
        }
        let file = try AtomicFileWriter(path: destination)
        try file.write(Array(bytes))
        try file.commit()
    }
}
