/// What can be wrong with a safetensors file or checkpoint. Every case names the file, and
/// the tensor where one is at fault.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case cannotRead(path: String, reason: String)
    case truncated(path: String, reason: String)
    case headerTooLarge(path: String, headerBytes: UInt64, fileBytes: Int)
    case malformedHeader(path: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case badShape(path: String, tensor: String, reason: String)
    case badOffsets(path: String, tensor: String, reason: String)
    case overlappingTensors(path: String, first: String, second: String)
    case missingTensor(path: String, tensor: String)
    case wrongShape(path: String, tensor: String, expected: [Int], found: [Int])
    case duplicateTensor(path: String, tensor: String)
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): "\(path): cannot read: \(reason)"
        case .truncated(let path, let reason): "\(path): truncated file: \(reason)"
        case .headerTooLarge(let path, let header, let file):
            "\(path): header length \(header) runs past the end of the \(file)-byte file"
        case .malformedHeader(let path, let reason): "\(path): malformed safetensors header: \(reason)"
        case .unknownDType(let path, let tensor, let dtype): "\(path): tensor '\(tensor)' has unknown dtype '\(dtype)'"
        case .unsupportedDType(let path, let tensor, let dtype):
            "\(path): tensor '\(tensor)' has dtype \(dtype); parameters must be F32, F16 or BF16"
        case .badShape(let path, let tensor, let reason): "\(path): tensor '\(tensor)': bad shape: \(reason)"
        case .badOffsets(let path, let tensor, let reason): "\(path): tensor '\(tensor)': bad data_offsets: \(reason)"
        case .overlappingTensors(let path, let first, let second):
            "\(path): tensors '\(first)' and '\(second)' overlap"
        case .missingTensor(let path, let tensor): "\(path): tensor '\(tensor)' is missing"
        case .wrongShape(let path, let tensor, let expected, let found):
            "\(path): tensor '\(tensor)' has shape \(found), the config requires \(expected)"
        case .duplicateTensor(let path, let tensor): "\(path): tensor '\(tensor)' appears more than once"
        case .cannotWrite(let path, let reason): "\(path): cannot write: \(reason)"
        }
    }
}
