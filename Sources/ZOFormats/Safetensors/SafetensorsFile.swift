import ZOCore

/// A memory-mapped safetensors file with its validated header.
///
/// The mapping lives as long as this object; tensor data is converted to Float32 on request.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let header: SafetensorsHeader
    private let mapping: HostBuffer

    /// Maps and validates `path`.
    public init(path: String) throws(SafetensorsError) {
        do {
            mapping = try HostBuffer(mapping: path)
        } catch {
            throw .cannotRead(path: path, reason: error.description)
        }
        self.path = path
        header = try SafetensorsHeader(parsing: UnsafeRawBufferPointer(start: mapping.baseAddress, count: mapping.byteCount),
                                       path: path)
    }

    /// Tensor names, sorted.
    public var tensorNames: [String] { header.tensors.keys.sorted() }

    /// The header entry for `name`, or nil.
    public func info(_ name: String) -> SafetensorsTensorInfo? { header.tensors[name] }

    /// The raw bytes of tensor `name`, valid while this file is alive.
    public func rawBytes(_ name: String) throws(SafetensorsError) -> UnsafeRawBufferPointer {
        guard let info = header.tensors[name] else { throw .missingTensor(path: path, tensor: name) }
        return UnsafeRawBufferPointer(start: mapping.baseAddress + header.dataStart + info.dataRange.lowerBound,
                                      count: info.dataRange.count)
    }

    /// Converts tensor `name` (F32, F16 or BF16) to Float32 into `destination`, after checking
    /// that its shape is `expectedShape`.
    public func readFloats(_ name: String, expectedShape: [Int], into destination: UnsafeMutablePointer<Float>) throws(SafetensorsError) {
        guard let info = header.tensors[name] else { throw .missingTensor(path: path, tensor: name) }
        guard info.shape == expectedShape else {
            throw .wrongShape(path: path, tensor: name, expected: expectedShape, found: info.shape)
        }
        let bytes = try rawBytes(name)
        let count = info.elementCount
        switch info.dtype {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: bytes.baseAddress!, byteCount: count * 4)
        case .f16:
            for i in 0..<count { destination[i] = Half.f16ToFloat(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count { destination[i] = Half.bf16ToFloat(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        default:
            throw .unsupportedDType(path: path, tensor: name, dtype: info.dtype.rawValue)
        }
    }
}
