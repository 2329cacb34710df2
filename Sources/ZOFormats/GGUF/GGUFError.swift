/// What can be wrong with a GGUF file. Every case names the file, and the key or tensor at
/// fault where there is one.
public enum GGUFError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case badMagic(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    case truncated(path: String, offset: Int, reason: String)
    case absurdCount(path: String, what: String, count: UInt64)
    case unknownValueType(path: String, key: String, type: UInt32)
    case unknownTensorType(path: String, tensor: String, type: UInt32)
    case unsupportedTensorType(path: String, tensor: String, type: String)
    case badTensor(path: String, tensor: String, reason: String)
    case duplicate(path: String, name: String)
    case missingKey(path: String, key: String)
    case wrongKeyType(path: String, key: String, expected: String)
    case missingTensor(path: String, tensor: String)
    case wrongShape(path: String, tensor: String, expected: [Int], found: [Int])
    case unwritable(path: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): "\(path): cannot read: \(reason)"
        case .badMagic(let path): "\(path): not a GGUF file (wrong magic)"
        case .unsupportedVersion(let path, let version): "\(path): GGUF version \(version) is not supported (2 and 3 are)"
        case .truncated(let path, let offset, let reason): "\(path): truncated at byte \(offset): \(reason)"
        case .absurdCount(let path, let what, let count): "\(path): \(what) \(count) is larger than the file allows"
        case .unknownValueType(let path, let key, let type): "\(path): metadata '\(key)' has unknown value type \(type)"
        case .unknownTensorType(let path, let tensor, let type): "\(path): tensor '\(tensor)' has unknown type \(type)"
        case .unsupportedTensorType(let path, let tensor, let type):
            "\(path): tensor '\(tensor)' has type \(type), which ZOTune cannot dequantize"
        case .badTensor(let path, let tensor, let reason): "\(path): tensor '\(tensor)': \(reason)"
        case .duplicate(let path, let name): "\(path): '\(name)' appears more than once"
        case .missingKey(let path, let key): "\(path): metadata '\(key)' is missing"
        case .wrongKeyType(let path, let key, let expected): "\(path): metadata '\(key)' is not \(expected)"
        case .missingTensor(let path, let tensor): "\(path): tensor '\(tensor)' is missing"
        case .wrongShape(let path, let tensor, let expected, let found):
            "\(path): tensor '\(tensor)' has shape \(found), the model requires \(expected)"
        case .unwritable(let path, let key, let reason): "\(path): cannot write metadata '\(key)': \(reason)"
        }
    }
}
