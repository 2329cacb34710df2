import ZOCore
import ZOFormats

/// Why a model could not be loaded or run. Cases name the file, tensor or argument at fault.
public enum ModelError: Error, CustomStringConvertible {
    case config(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case weights(SafetensorsError)
    case gguf(GGUFError)
    case tokenOutOfRange(sequence: Int, position: Int, id: Int, vocab: Int)
    case sequenceTooLong(sequence: Int, length: Int, maximum: Int)
    case emptyBatch(String)
    case unknownShape(name: String, known: [String])
    case memory(String)
    /// A LoRA adapter that does not fit the model (targets, shapes).
    case adapter(String)

    public var description: String {
        switch self {
        case .config(let path, let reason): "\(path): \(reason)"
        case .unsupported(let path, let reason): "\(path): unsupported model: \(reason)"
        case .weights(let error): error.description
        case .gguf(let error): error.description
        case .tokenOutOfRange(let sequence, let position, let id, let vocab):
            "token id \(id) at position \(position) of sequence \(sequence) is outside the vocabulary (0..<\(vocab))"
        case .sequenceTooLong(let sequence, let length, let maximum):
            "sequence \(sequence) has \(length) tokens; the model's positions table allows at most \(maximum)"
        case .emptyBatch(let reason): "empty input: \(reason)"
        case .unknownShape(let name, let known): "unknown shape '\(name)'; known: \(known.joined(separator: ", "))"
        case .memory(let reason): reason
        case .adapter(let reason): "LoRA adapter: \(reason)"
        }
    }
}
